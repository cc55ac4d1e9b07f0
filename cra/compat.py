"""What differs between the Python versions cra supports (requires-python >= 3.10)."""

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser from PyPI (the `tomli` dependency), before it joined the standard library
    import tomli as tomllib

__all__ = ["tomllib"]
