"""Claude Code hook entry point: records one hook event from stdin, prints nothing, exits 0.

The event goes to the spool and a detached drainer writes it to SQLite (spool.py), so Claude Code
waits only for an interpreter start-up and one file write. Claude Code runs this once per event:

    /usr/bin/python3 -S /path/to/claude_hooks/hook.py

Standard library only (a test asserts it). A script's bytecode is never cached: this file is
compiled on every run, so everything else lives in the package.
"""

import os
import sys

if __name__ == "__main__":
    try:
        # Run by path: make the package importable without site-packages (-S skips `site`), and keep
        # its bytecode fresh even under PYTHONDONTWRITEBYTECODE (else an updated module would be
        # compiled on every tool call until `cra install` runs again).
        sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.dont_write_bytecode = False
        from claude_hooks import spool

        spool.handle_stdin(0, os.environ)
    except BaseException:
        pass  # never break Claude Code: whatever happened, this hook's answer is "nothing to say"
    finally:
        os._exit(0)  # no atexit handlers, no interpreter teardown: nothing can print, nothing can hang
