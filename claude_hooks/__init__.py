"""cra's Claude Code hooks: standard library only, never imports cra.

`hook.py` is the entry point Claude Code runs; `capture.py` turns one hook event into rows (shared
with `cra`, which replays spooled events through the same code).
"""

# Events cra registers. Only names that Claude Code 2.1.197 and current releases both accept: a
# plugin hooks.json with an unknown event name fails to load on older clients. Never WorktreeCreate
# (registering it replaces worktree creation).
HOOK_EVENTS = (
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "PermissionRequest",
    "PermissionDenied",
    "Notification",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
)

# Events whose hooks take a tool-name matcher.
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied")
