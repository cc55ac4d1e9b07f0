"""A recording hook (stdlib only): appends {event, t_start, t_end, payload, env} to a JSONL file.

    python3 -S record_hook.py OUT.jsonl

Prints nothing and exits 0 (anything on stdout could change what Claude Code does). One write per
line with O_APPEND, so parallel hooks never interleave lines.
"""

import json
import os
import sys
import time

# Hook processes get a per-session messaging token: never written to a fixture.
SECRET_ENV = ("CLAUDE_CODE_MESSAGING_TOKEN",)


def main():
    t_start = time.time()
    raw = sys.stdin.buffer.read()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    event = payload.get("hook_event_name") if isinstance(payload, dict) else None
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("CLAUDE") and k not in SECRET_ENV}
    line = {"event": event, "t_start": t_start, "t_end": time.time(), "payload": payload, "env": env}
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
    finally:
        os.close(fd)


if __name__ == "__main__":
    try:
        main()
    finally:
        os._exit(0)
