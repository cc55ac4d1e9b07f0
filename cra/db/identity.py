"""How rows are named by their content, where a column says so (`pairs.content_hash`).

Beside the schema so that every stage that writes such a row computes the same name: the dataset
stage when it mines or imports pairs, `cra redact db` when it rewrites them.
"""

import hashlib
import json


def pair_hash(prompt, chosen, rejected) -> str:
    """The identity of a pair (`pairs.content_hash`): storing the same pair twice is a no-op."""
    blob = json.dumps([prompt, chosen, rejected], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
