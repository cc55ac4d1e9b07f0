"""Claude Code hook entry point: records one hook event from stdin, prints nothing, exits 0.

The event goes to the spool and a detached drainer writes it to SQLite (see spool.py), so Claude
Code waits only for an interpreter start-up and one small file write.

Claude Code runs this once per hook event, e.g.

    /usr/bin/python3 -S /path/to/claude_hooks/hook.py

Standard library only (a test asserts it): every tool call pays for what this imports.
"""

import os
import sys

if __name__ == "__main__":
    # Run by path: make the package importable without site-packages (-S skips `site`).
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Keep this package's compiled bytecode fresh even under PYTHONDONTWRITEBYTECODE: otherwise an
    # updated capture.py is recompiled on every tool call (~20-30 ms) until `cra install` runs again.
    sys.dont_write_bytecode = False


def main() -> None:
    try:
        from claude_hooks import spool

        spool.handle(sys.stdin.buffer.read(), os.environ)
    except BaseException:
        # Never break Claude Code: whatever happened, this hook's answer is "nothing to say".
        pass
    finally:
        # os._exit skips atexit handlers and interpreter teardown: nothing can print, nothing can hang.
        os._exit(0)


if __name__ == "__main__":
    main()
