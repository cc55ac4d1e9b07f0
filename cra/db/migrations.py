"""The schema, as an append-only list of migrations. Never edit an applied one: add the next.

Each table's owner (the stage that writes it) is named in its migration's docstring.
"""
from sqlite_utils import Database, Migrations

migrations = Migrations("cra")


@migrations()
def m001_capture(db: Database):
    """Hook capture (claude_hooks/capture.py writes these)."""
    db.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_uid TEXT NOT NULL UNIQUE,  -- made by the hook; replaying a spool file twice is a no-op
            received_at TEXT NOT NULL,       -- ISO 8601 UTC, when the hook started
            hook_event_name TEXT,
            session_id TEXT,
            agent_id TEXT,                   -- set inside a subagent
            tool_use_id TEXT,
            prompt_id TEXT,
            payload TEXT NOT NULL,           -- stdin exactly as received (decoded as UTF-8)
            payload_bytes BLOB,              -- the exact bytes, only when they were not valid UTF-8
            parse_error TEXT,                -- why the payload is not a JSON object, if it is not
            derive_error TEXT,               -- why deriving sessions/tool_calls failed (event still kept)
            env TEXT,                        -- selected CLAUDE_* environment variables (JSON)
            via TEXT NOT NULL                -- 'hook' (live) or 'spool' (replayed later)
        )
        """
    )
    db.execute("CREATE INDEX idx_events_session ON events (session_id, id)")
    db.execute("CREATE INDEX idx_events_name ON events (hook_event_name)")
    db.execute(
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,             -- Claude Code session id (= transcript file name)
            cwd TEXT,                        -- working directory of the first event
            project_dir TEXT,                -- CLAUDE_PROJECT_DIR: the project root, stable across `cd`
            model TEXT,
            start_source TEXT,               -- startup, resume, clear, compact
            started_at TEXT,
            ended_at TEXT,
            end_reason TEXT,
            transcript_path TEXT,
            client_version TEXT,             -- from the transcript, when known
            permission_mode TEXT,
            entrypoint TEXT,                 -- cli (interactive) or sdk-cli (-p)
            first_event_at TEXT,
            last_event_at TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE tool_calls (
            tool_use_id TEXT PRIMARY KEY,    -- Claude's id; 'cra-<session>-<n>' for older clients without one
            session_id TEXT NOT NULL,
            agent_id TEXT,                   -- the subagent that made the call, NULL on the main thread
            agent_type TEXT,
            prompt_id TEXT,
            tool_name TEXT,
            tool_input TEXT,                 -- JSON, as the model wrote it
            tool_response TEXT,              -- JSON, PostToolUse's structured result
            response_text TEXT,              -- what the model was shown (PostToolBatch)
            status TEXT NOT NULL,            -- pending, success, failure, denied, blocked, invalid, interrupted
            error TEXT,
            is_interrupt INTEGER,
            duration_ms INTEGER,
            pre_at TEXT,
            post_at TEXT,
            seq INTEGER NOT NULL,            -- order within the session (model order within a batch)
            batch_id INTEGER,                -- events.id of the PostToolBatch: calls sharing it ran as one batch
            permission_requested INTEGER NOT NULL DEFAULT 0,
            permission_mode TEXT,
            cwd TEXT,
            synthetic_id INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX idx_tool_calls_session ON tool_calls (session_id, seq)")
    db.execute("CREATE INDEX idx_tool_calls_tool ON tool_calls (tool_name)")
