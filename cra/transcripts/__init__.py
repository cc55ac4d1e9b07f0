"""Transcripts: Claude Code's own JSONL record of a session, from raw lines to messages and turns.

- `claude_hooks/transcript_tail.py` (stdlib) copies new raw lines into `transcript_lines` at hook
  boundaries; `tail_file` is shared with `cra import`.
- `normalize`: entries of every client version -> `messages`, `tool_calls` links, `subagents`,
  `compactions`, `api_shapes`; then `turns` per session (and per subagent).
- `importer`: `cra import` (backfill) and `sync` (catch up on what the hooks left).
- `commands`: `cra import`, `cra sync`, `cra sessions`, `cra show`.
"""
