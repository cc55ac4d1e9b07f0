"""The schema, as an append-only list of migrations. Never edit an applied one: add the next.

Each table's owner (the stage that writes it) is named in its migration's docstring.

Order: pending migrations run in the order they are listed here, and sqlite-utils records each
applied one by name (`_sqlite_migrations`). A name's number is part of its name, not its position:
work done in parallel appends its migrations in the order it is merged (m005_runs landed before
m004_datasets, m013 before m009-m012), so nothing may count positions. Code that needs a migration
names it (the hook: `claude_hooks.drain.REQUIRED_MIGRATIONS`). tests/test_migrations.py pins the
order of those already released: append after them, never in between.
"""

from sqlite_utils import Database, Migrations

migrations = Migrations("cra")


@migrations()
def m001_capture(db: Database):
    """Hook capture (the hooks' drainer, claude_hooks/drain.py, writes these)."""
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
            via TEXT NOT NULL                -- who ingested it from the spool: 'hook' (a hook's drainer) or 'cra'
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


@migrations()
def m002_transcripts(db: Database):
    """Transcripts: raw lines (claude_hooks/transcript_tail.py at boundaries, `cra import`) and
    their normalised form (cra/transcripts writes messages, turns, subagents, compactions, api_shapes
    and links tool_calls to them)."""
    db.execute(
        """
        CREATE TABLE transcript_files (
            path TEXT PRIMARY KEY,
            session_id TEXT,
            agent_id TEXT,                   -- set for <session>/subagents/agent-<id>.jsonl
            byte_offset INTEGER NOT NULL DEFAULT 0,  -- bytes read so far (always a line boundary)
            size INTEGER,                    -- file size when last read
            inode INTEGER,
            mtime REAL,
            head_hash TEXT,                  -- crc32 of the first head_len bytes: a rewrite/rotation guard
            head_len INTEGER,
            line_count INTEGER NOT NULL DEFAULT 0,   -- lines read in the current generation
            generation INTEGER NOT NULL DEFAULT 0,   -- bumped when the file was truncated or replaced
            format TEXT NOT NULL DEFAULT 'jsonl',    -- 'jsonl', or 'json-array' (a transcript saved as one array)
            norm_line_id INTEGER NOT NULL DEFAULT 0, -- transcript_lines.id up to which messages are normalised
            turns_line_id INTEGER NOT NULL DEFAULT 0,-- transcript_lines.id up to which turns are rebuilt
            updated_at TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE transcript_lines (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            line_no INTEGER NOT NULL,        -- 0-based within the file (and generation)
            byte_offset INTEGER NOT NULL,
            session_id TEXT,
            agent_id TEXT,
            entry_type TEXT,                 -- the entry's "type" (user, assistant, system, api-request, ...)
            uuid TEXT,
            raw TEXT NOT NULL,               -- the line exactly as in the file (decoded as UTF-8)
            raw_bytes BLOB,                  -- the exact bytes, only when they were not valid UTF-8
            parse_error TEXT                 -- why the line is not a JSON object, if it is not
        )
        """
    )
    db.execute("CREATE INDEX idx_transcript_lines_path ON transcript_lines (path, id)")
    db.execute("CREATE INDEX idx_transcript_lines_session ON transcript_lines (session_id)")
    db.execute(
        """
        CREATE TABLE messages (
            uuid TEXT PRIMARY KEY,           -- the entry's uuid (a copied entry in a resumed file is one row)
            session_id TEXT NOT NULL,
            agent_id TEXT,                   -- NULL on the main thread
            parent_uuid TEXT,
            is_sidechain INTEGER NOT NULL DEFAULT 0,
            role TEXT NOT NULL,              -- 'user' | 'assistant'
            path TEXT,                       -- transcript file it came from
            line_id INTEGER,                 -- transcript_lines.id (order of ingestion)
            entry_seq INTEGER,               -- order within its file (line number)
            timestamp TEXT,
            model TEXT,
            api_message_id TEXT,             -- message.id: content blocks of one API response share it
            request_id TEXT,
            content TEXT,                    -- JSON list of content blocks (a string content becomes one text block)
            text TEXT,                       -- text blocks joined
            thinking TEXT,                   -- thinking blocks joined
            tool_use_ids TEXT,               -- JSON array
            tool_result_ids TEXT,            -- JSON array
            input_tokens INTEGER,            -- usage as reported on the entry (repeated on each block of a response)
            output_tokens INTEGER,
            cache_read_tokens INTEGER,
            cache_creation_tokens INTEGER,
            stop_reason TEXT,
            prompt_id TEXT,
            is_compact_summary INTEGER NOT NULL DEFAULT 0,
            is_meta INTEGER NOT NULL DEFAULT 0,   -- injected context (skill/command expansions, reminders)
            is_api_error INTEGER NOT NULL DEFAULT 0,
            cwd TEXT,
            version TEXT,                    -- Claude Code version that wrote the entry
            turn_id INTEGER                  -- turns.id
        )
        """
    )
    db.execute("CREATE INDEX idx_messages_session ON messages (session_id, agent_id, line_id)")
    db.execute("CREATE INDEX idx_messages_turn ON messages (turn_id)")
    db.execute(
        """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,          -- stable across rebuilds: rows are updated in place
            session_id TEXT NOT NULL,
            agent_id TEXT,                   -- NULL for main-thread turns
            turn_index INTEGER NOT NULL,     -- 0-based within the session (and agent)
            prompt_id TEXT,
            prompt_uuid TEXT,
            prompt_text TEXT,
            started_at TEXT,
            ended_at TEXT,
            final_answer TEXT,
            final_answer_source TEXT,        -- 'transcript', or 'stop_hook' (Stop's last_assistant_message
                                             -- while the transcript lacks the final message)
            tool_call_count INTEGER NOT NULL DEFAULT 0,
            duration_ms INTEGER,
            input_tokens INTEGER,            -- summed once per API response
            output_tokens INTEGER,
            cache_read_tokens INTEGER,
            cache_creation_tokens INTEGER,
            model TEXT,
            outcome TEXT,                    -- 'completed' | 'interrupted' | 'error' | 'incomplete'
            is_synthetic INTEGER NOT NULL DEFAULT 0,  -- not typed by the user (task notifications, ...)
            message_count INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE UNIQUE INDEX idx_turns_key ON turns (session_id, coalesce(agent_id, ''), turn_index)")
    db.execute(
        """
        CREATE TABLE subagents (
            agent_id TEXT PRIMARY KEY,
            session_id TEXT,
            parent_tool_use_id TEXT,         -- the Agent/Task tool call that started it
            agent_type TEXT,
            description TEXT,
            transcript_path TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE compactions (
            id INTEGER PRIMARY KEY,
            session_id TEXT,
            uuid TEXT UNIQUE,                -- the compact_boundary entry (or summary entry's leafUuid)
            timestamp TEXT,
            trigger TEXT,                    -- manual, auto; 'summary-entry' for the older `summary` lines
            pre_tokens INTEGER,
            summary TEXT,                    -- the compact summary the model continued from
            summary_uuid TEXT                -- the isCompactSummary user entry
        )
        """
    )
    db.execute(
        """
        CREATE TABLE api_shapes (
            session_id TEXT NOT NULL,
            shape_hash TEXT NOT NULL,
            system TEXT,                     -- the system prompt's text blocks joined
            system_blocks TEXT,              -- JSON: the system blocks exactly as sent
            tools TEXT,                      -- JSON: the tool schemas
            timestamp TEXT,
            version TEXT,
            PRIMARY KEY (session_id, shape_hash)
        )
        """
    )
    # Links from hook-captured tool calls to the transcript. `source` defaults to 'hook' so the hook's
    # own INSERT needs no change.
    db.execute("ALTER TABLE tool_calls ADD COLUMN message_uuid TEXT")
    db.execute("ALTER TABLE tool_calls ADD COLUMN turn_id INTEGER")
    db.execute("ALTER TABLE tool_calls ADD COLUMN source TEXT NOT NULL DEFAULT 'hook'")
    db.execute("CREATE INDEX idx_tool_calls_message ON tool_calls (message_uuid)")


@migrations()
def m003_signals(db: Database):
    """Per-turn signals (cra/signals writes `signals`; docs/signals.md defines each column), views
    that make common questions one line of SQL, and full-text search over prompts and assistant
    text (FTS5 tables kept current by triggers)."""
    db.execute(
        """
        CREATE TABLE signals (
            turn_id INTEGER PRIMARY KEY,     -- turns.id
            session_id TEXT,
            input_key TEXT NOT NULL,         -- config fingerprint + digest of the turn's rows: differs => recompute
            computed_at TEXT NOT NULL,
            tool_sequence TEXT,              -- JSON [[name, ...], ...]: one list per group, >1 name = parallel
            sequence_pattern TEXT,           -- e.g. 'Read+ > [Glob|Grep] > Edit' (repeats collapsed)
            tool_count INTEGER,
            distinct_tools INTEGER,
            failures INTEGER,                -- calls that errored (failure, invalid input, blocked by a hook)
            recoveries INTEGER,              -- failed or denied calls followed by a successful retry or alternative
            unrecovered_failures INTEGER,
            denials INTEGER,
            interruptions INTEGER,
            parallel_groups INTEGER,
            exploration_calls INTEGER,       -- reads/searches/read-only shell/web before the first change
            change_calls INTEGER,            -- edits, writes, mutating shell commands
            exploration_depth TEXT,          -- minimal, moderate, thorough, exhaustive; NULL without tools
            workflow TEXT,                   -- delegated, iterative, parallel, exploratory, linear, none
            workflow_tags TEXT,              -- JSON: every pattern that applies
            has_plan INTEGER,
            plan_source TEXT,                -- tool, text, thinking
            constraints INTEGER,
            prunings INTEGER,
            self_corrections INTEGER,
            outcome TEXT,                    -- completed, interrupted, error, incomplete
            final_answer_chars INTEGER,
            final_answer_words INTEGER,
            evidence TEXT                    -- JSON list: what triggered each signal (message uuid + span, or tool_use ids)
        )
        """
    )
    db.execute("CREATE INDEX idx_signals_session ON signals (session_id)")
    # Signals and the views join tool calls to their turn.
    db.execute("CREATE INDEX idx_tool_calls_turn ON tool_calls (turn_id)")
    db.execute(
        """
        CREATE VIEW tool_calls_with_turns AS
        SELECT tc.*, t.turn_index, t.prompt_text, t.started_at AS turn_started_at, t.outcome AS turn_outcome,
               s.project_dir, s.cwd AS session_cwd, coalesce(t.model, s.model) AS model
        FROM tool_calls tc
        LEFT JOIN turns t ON t.id = tc.turn_id
        LEFT JOIN sessions s ON s.id = tc.session_id
        """
    )
    db.execute(
        """
        CREATE VIEW turns_with_signals AS
        SELECT t.*, sess.project_dir,
               sg.sequence_pattern, sg.tool_sequence, sg.tool_count, sg.distinct_tools, sg.failures,
               sg.recoveries, sg.unrecovered_failures, sg.denials, sg.interruptions, sg.parallel_groups,
               sg.exploration_calls, sg.change_calls, sg.exploration_depth, sg.workflow, sg.workflow_tags,
               sg.has_plan, sg.plan_source, sg.constraints, sg.prunings, sg.self_corrections,
               sg.final_answer_words, sg.evidence, sg.computed_at AS signals_computed_at
        FROM turns t
        LEFT JOIN signals sg ON sg.turn_id = t.id
        LEFT JOIN sessions sess ON sess.id = t.session_id
        """
    )
    # FTS5 over prompts and assistant text, in sqlite-utils' layout (`table.search()` finds it).
    # Written out rather than enable_fts(): that uses executescript, which would commit mid-migration.
    for table, columns in (("messages", ("text", "thinking")), ("turns", ("prompt_text", "final_answer"))):
        cols = ", ".join(f"[{c}]" for c in columns)
        new = ", ".join(f"new.[{c}]" for c in columns)
        old = ", ".join(f"old.[{c}]" for c in columns)
        db.execute(f"CREATE VIRTUAL TABLE [{table}_fts] USING FTS5 ({cols}, tokenize='porter', content=[{table}])")
        db.execute(f"INSERT INTO [{table}_fts] (rowid, {cols}) SELECT rowid, {cols} FROM [{table}]")
        db.execute(
            f"CREATE TRIGGER [{table}_ai] AFTER INSERT ON [{table}] BEGIN"
            f" INSERT INTO [{table}_fts] (rowid, {cols}) VALUES (new.rowid, {new}); END"
        )
        db.execute(
            f"CREATE TRIGGER [{table}_ad] AFTER DELETE ON [{table}] BEGIN"
            f" INSERT INTO [{table}_fts] ([{table}_fts], rowid, {cols}) VALUES ('delete', old.rowid, {old}); END"
        )
        # Only when the indexed text changes: turns and messages get other columns updated often.
        db.execute(
            f"CREATE TRIGGER [{table}_au] AFTER UPDATE OF {', '.join(columns)} ON [{table}] BEGIN"
            f" INSERT INTO [{table}_fts] ([{table}_fts], rowid, {cols}) VALUES ('delete', old.rowid, {old});"
            f" INSERT INTO [{table}_fts] (rowid, {cols}) VALUES (new.rowid, {new}); END"
        )


@migrations()
def m005_runs(db: Database):
    """Training runs and the files they (or export) produce (cra/train/runs.py writes these)."""
    db.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,              -- sft, reward, ppo, grpo, ...
            base_model TEXT NOT NULL,        -- hub id or local directory, as given
            dataset TEXT,                    -- dataset name or path, as given
            config TEXT NOT NULL,            -- JSON: the full, validated config the run used
            status TEXT NOT NULL,            -- running, completed, failed, interrupted
            started_at TEXT NOT NULL,        -- ISO 8601 UTC
            ended_at TEXT,
            metrics TEXT,                    -- JSON: steps, losses, tokens/s, seconds, ...
            output_dir TEXT NOT NULL,        -- versioned directory: checkpoints, adapter, logs
            parent_run INTEGER REFERENCES runs(id),  -- the run this one resumed or started from
            error TEXT                       -- why it failed (or was interrupted)
        )
        """
    )
    db.execute("CREATE INDEX idx_runs_kind ON runs (kind, id)")
    db.execute(
        """
        CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            kind TEXT NOT NULL,              -- adapter, checkpoint, gguf, modelfile, ...
            path TEXT NOT NULL,
            bytes INTEGER,
            created_at TEXT NOT NULL,
            meta TEXT                        -- JSON: anything kind-specific (quantization, step, ...)
        )
        """
    )
    db.execute("CREATE INDEX idx_artifacts_run ON artifacts (run_id)")


@migrations()
def m004_datasets(db: Database):
    """Datasets and preference pairs (cra/dataset writes these)."""
    db.execute(
        """
        CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,              -- 'sft' (examples) or 'pairs' (chosen/rejected)
            format TEXT NOT NULL,            -- openai, sharegpt (sft); dpo (pairs)
            path TEXT NOT NULL,              -- directory holding train.jsonl, eval.jsonl, README.md
            created_at TEXT NOT NULL,        -- ISO 8601 UTC
            params TEXT NOT NULL,            -- JSON: every option the build ran with (filters, seed, ...)
            stats TEXT NOT NULL,             -- JSON: counts, filter removals, redactions, token lengths
            train_count INTEGER NOT NULL,
            eval_count INTEGER NOT NULL,
            redacted INTEGER NOT NULL        -- 0 only when built with --no-redact
        )
        """
    )
    db.execute(
        """
        CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,            -- denial, correction, perturbed_tool, perturbed_args, imported, synthetic
            session_id TEXT,                 -- NULL for imported pairs
            turn_id INTEGER,                 -- turns.id the context comes from
            tool_use_id TEXT,                -- the call the pair is about (the rejected one, when real)
            prompt TEXT NOT NULL,            -- JSON: messages before the decision
            chosen TEXT NOT NULL,            -- JSON: [assistant message] that should be preferred
            rejected TEXT NOT NULL,          -- JSON: [assistant message] that should not
            tools TEXT,                      -- JSON string of the tool schemas, as in examples
            is_synthetic INTEGER NOT NULL DEFAULT 0,  -- never used for evaluation
            content_hash TEXT NOT NULL UNIQUE,        -- sha256 of prompt+chosen+rejected: mining twice is a no-op
            origin TEXT,                     -- imported file path, or the miner version
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_pairs_source ON pairs (source)")
    db.execute(
        """
        CREATE TABLE synthetic_workflows (
            id INTEGER PRIMARY KEY,
            template TEXT NOT NULL,          -- code_search, file_modification, debugging, system_analysis, deployment
            session_id TEXT NOT NULL,        -- 'synthetic-<n>': never a real session id
            messages TEXT NOT NULL,          -- JSON: the conversation in the openai example format
            tool_names TEXT NOT NULL,        -- JSON: tools the workflow uses
            seed INTEGER NOT NULL,
            content_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m006_evals(db: Database):
    """Evaluations, blind A/B packs and people's judgements of them (cra/eval writes these)."""
    db.execute(
        """
        CREATE TABLE evals (
            id INTEGER PRIMARY KEY,
            run_id INTEGER REFERENCES runs(id),  -- the run `cra eval RUN` was asked about
            subject TEXT NOT NULL,           -- run (its adapter), base (its base model alone), parent (the run it started from)
            model_run_id INTEGER REFERENCES runs(id),  -- whose adapter generated; NULL for the bare base
            base_model TEXT NOT NULL,
            adapter TEXT,                    -- adapter directory or GGUF file(s) used; NULL for the bare base
            backend TEXT NOT NULL,           -- hf or llama.cpp
            dataset TEXT,                    -- dataset name or path, as resolved
            split TEXT NOT NULL,             -- eval (held out) or train
            step_limit INTEGER,              -- --limit, if given
            steps_hash TEXT NOT NULL,        -- identifies the exact steps: equal hashes saw equal contexts
            step_count INTEGER NOT NULL,
            settings TEXT NOT NULL,          -- JSON: generation settings (max_new_tokens, chat template, ...)
            metrics TEXT NOT NULL,           -- JSON: the report (docs/eval.md), intervals included
            predictions TEXT,                -- JSONL file: each step's generated text and scores
            created_at TEXT NOT NULL,        -- ISO 8601 UTC
            seconds REAL                     -- wall time of generation and scoring
        )
        """
    )
    db.execute("CREATE INDEX idx_evals_run ON evals (run_id, id)")
    db.execute(
        """
        CREATE TABLE eval_packs (
            id TEXT PRIMARY KEY,             -- random token, also written in the page and in judgement files
            eval_id INTEGER NOT NULL REFERENCES evals(id),
            path TEXT NOT NULL,              -- the HTML page written
            answer_key TEXT NOT NULL,        -- JSON: item id -> the side (A or B) showing Claude's action; never in the page
            identical TEXT NOT NULL,         -- JSON: item ids where both sides are the same action
            items INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE eval_judgements (
            id INTEGER PRIMARY KEY,
            pack_id TEXT NOT NULL REFERENCES eval_packs(id),
            judge TEXT NOT NULL,             -- the name the person typed in the page
            item_id TEXT NOT NULL,
            choice TEXT NOT NULL,            -- A or B: the side the person took for Claude
            fooled INTEGER NOT NULL,         -- 1 when they took the model's action for Claude's
            identical INTEGER NOT NULL,      -- 1 when both sides were the same action
            source TEXT,                     -- the judgements file it came from
            recorded_at TEXT NOT NULL,
            UNIQUE (pack_id, judge, item_id) -- recording the same file twice changes nothing
        )
        """
    )


@migrations()
def m007_cycles(db: Database):
    """Continuous-learning cycles and model promotions (cra/auto writes these; docs/auto.md)."""
    db.execute(
        """
        CREATE TABLE cycles (
            id INTEGER PRIMARY KEY,
            number INTEGER NOT NULL,         -- 1, 2, ...: a retry after a failure keeps the number
            attempt INTEGER NOT NULL,        -- 1 + failed attempts at this number before it
            run_id INTEGER REFERENCES runs(id),  -- the kind='cycle' run; its stages are its child runs
            status TEXT NOT NULL,            -- running, completed, failed, crashed (holder died mid-cycle)
            trigger TEXT NOT NULL,           -- first, new_turns, interval, forced, retry
            started_at TEXT NOT NULL,        -- ISO 8601 UTC
            ended_at TEXT,
            qualifying_turns INTEGER NOT NULL,  -- qualifying turns when it started (the next cycle counts from here)
            new_turns INTEGER NOT NULL,      -- of which new since the last completed cycle
            with_rl INTEGER NOT NULL,        -- 1 when this cycle runs the RL stage
            stages TEXT NOT NULL,            -- JSON [{name, status, run_id, started_at, ended_at, seconds, error, outputs}]
            model_run_id INTEGER REFERENCES runs(id),     -- the candidate: the cycle's sft or grpo run
            baseline_run_id INTEGER REFERENCES runs(id),  -- the promoted model it was compared with (NULL: the base)
            metric TEXT,                     -- the eval key that decided (promote_metric)
            score REAL,                      -- candidate's value of it
            baseline_score REAL,             -- the baseline's, on the same steps
            decision TEXT,                   -- promoted, kept (the candidate was worse), NULL before the decision
            failed_stage TEXT,
            error TEXT,
            pid INTEGER,                     -- the process that ran it, and its host
            host TEXT
        )
        """
    )
    db.execute("CREATE INDEX idx_cycles_number ON cycles (number, id)")
    db.execute(
        """
        CREATE TABLE promotions (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),  -- the promoted model (an sft or grpo run)
            cycle_id INTEGER REFERENCES cycles(id),       -- NULL when promoted by hand (`cra auto promote`)
            promoted_at TEXT NOT NULL,
            current INTEGER NOT NULL DEFAULT 0,  -- 1 on exactly one row: the model users get by default
            gguf TEXT,                       -- the exported GGUF file, if any
            reason TEXT                      -- e.g. 'reward.total 0.41 >= 0.38'
        )
        """
    )
    # At most one current row: a promotion is one transaction that moves the flag.
    db.execute("CREATE UNIQUE INDEX idx_promotions_current ON promotions (current) WHERE current = 1")


@migrations()
def m008_shared_request_shapes(db: Database):
    """Request shapes stored once per shape, not once per session (cra/transcripts writes these).

    A shape (system prompt + tool schemas, tens of KB) is named by the client's `shapeHash`, and many
    sessions send the same one: each session now points at it. `api_shapes` stays as a view with its
    old columns, and takes INSERTs (an INSTEAD OF trigger), so queries and writers keep working."""
    db.execute(
        """
        CREATE TABLE request_shapes (
            shape_hash TEXT PRIMARY KEY,     -- the transcript's shapeHash (the client's hash of the shape)
            system TEXT,                     -- the system prompt's text blocks joined
            system_blocks TEXT,              -- JSON: the system blocks exactly as sent
            tools TEXT                       -- JSON: the tool schemas
        )
        """
    )
    db.execute(
        """
        CREATE TABLE session_request_shapes (
            session_id TEXT NOT NULL,
            shape_hash TEXT NOT NULL,        -- request_shapes.shape_hash
            timestamp TEXT,                  -- when the session first sent it
            version TEXT,                    -- Claude Code version that sent it
            PRIMARY KEY (session_id, shape_hash)
        )
        """
    )
    db.execute(
        "INSERT OR IGNORE INTO request_shapes (shape_hash, system, system_blocks, tools)"
        " SELECT shape_hash, system, system_blocks, tools FROM api_shapes ORDER BY rowid"
    )
    db.execute(
        "INSERT INTO session_request_shapes (session_id, shape_hash, timestamp, version)"
        " SELECT session_id, shape_hash, timestamp, version FROM api_shapes"
    )
    db.execute("DROP TABLE api_shapes")
    db.execute(
        """
        CREATE VIEW api_shapes AS
        SELECT s.session_id, s.shape_hash, r.system, r.system_blocks, r.tools, s.timestamp, s.version
        FROM session_request_shapes s LEFT JOIN request_shapes r ON r.shape_hash = s.shape_hash
        """
    )
    db.execute(
        """
        CREATE TRIGGER api_shapes_insert INSTEAD OF INSERT ON api_shapes BEGIN
            INSERT OR IGNORE INTO request_shapes (shape_hash, system, system_blocks, tools)
                VALUES (NEW.shape_hash, NEW.system, NEW.system_blocks, NEW.tools);
            INSERT OR IGNORE INTO session_request_shapes (session_id, shape_hash, timestamp, version)
                VALUES (NEW.session_id, NEW.shape_hash, NEW.timestamp, NEW.version);
        END
        """
    )


@migrations()
def m013_foreign_keys(db: Database):
    """Links between tables declared as foreign keys, so that Datasette, sqlite-utils and diagram tools
    show them. Declared, not enforced: cra never turns on PRAGMA foreign_keys (a hook records a tool
    call before its session row or its turn exists). Added to the stored CREATE TABLE text, which
    SQLite allows for constraints that do not change how rows are stored: instant on any size."""
    links = {
        "events": [("session_id", "sessions", "id")],
        "tool_calls": [
            ("session_id", "sessions", "id"),
            ("message_uuid", "messages", "uuid"),
            ("turn_id", "turns", "id"),
        ],
        "transcript_lines": [("path", "transcript_files", "path")],
        "messages": [
            ("session_id", "sessions", "id"),
            ("line_id", "transcript_lines", "id"),
            ("turn_id", "turns", "id"),
        ],
        "turns": [("session_id", "sessions", "id")],
        "subagents": [("session_id", "sessions", "id"), ("parent_tool_use_id", "tool_calls", "tool_use_id")],
        "compactions": [("session_id", "sessions", "id")],
        "signals": [("turn_id", "turns", "id")],
        "runs": [("parent_run", "runs", "id")],
        "artifacts": [("run_id", "runs", "id")],
        "pairs": [("session_id", "sessions", "id"), ("turn_id", "turns", "id")],
        "evals": [("run_id", "runs", "id"), ("model_run_id", "runs", "id")],
        "eval_packs": [("eval_id", "evals", "id")],
        "eval_judgements": [("pack_id", "eval_packs", "id")],
        "cycles": [("run_id", "runs", "id"), ("model_run_id", "runs", "id"), ("baseline_run_id", "runs", "id")],
        "promotions": [("run_id", "runs", "id"), ("cycle_id", "cycles", "id")],
        "session_request_shapes": [("session_id", "sessions", "id"), ("shape_hash", "request_shapes", "shape_hash")],
    }
    conn = db.conn
    rewritten = []
    for table, fks in links.items():
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()
        if row is None:
            continue
        sql = row[0]
        declared = {r[3] for r in conn.execute(f"PRAGMA foreign_key_list([{table}])")}
        clauses = [
            f"    FOREIGN KEY ({column}) REFERENCES {other}({other_column})"
            for column, other, other_column in fks
            if column not in declared
        ]
        if not clauses:
            continue
        # Before the table's closing parenthesis, on lines of their own: the last column's line may end
        # in a `-- comment`, which a comma on that line would join.
        end = sql.rindex(")")
        rewritten.append((sql[:end].rstrip(" ") + "    ,\n" + ",\n".join(clauses) + "\n" + sql[end:], table))
    if not rewritten:
        return
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.executemany("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", rewritten)
        # Other connections (a hook's drainer) reload the schema when its version changes.
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


@migrations()
def m014_call_outcome(db: Database):
    """`tool_calls_with_turns.call_outcome`: a call's status grouped the way `cra stats`, its HTML page and
    the signals count it: succeeded (success), errored (failure, invalid input, or blocked by a hook),
    denied (by the user or the permission rules), interrupted, pending (no result seen)."""
    db.execute("DROP VIEW tool_calls_with_turns")
    db.execute(
        """
        CREATE VIEW tool_calls_with_turns AS
        SELECT tc.*, t.turn_index, t.prompt_text, t.started_at AS turn_started_at, t.outcome AS turn_outcome,
               s.project_dir, s.cwd AS session_cwd, coalesce(t.model, s.model) AS model,
               CASE
                   WHEN tc.status = 'success' THEN 'succeeded'
                   WHEN tc.status IN ('failure', 'invalid', 'blocked') THEN 'errored'
                   WHEN tc.status = 'denied' THEN 'denied'
                   WHEN tc.status = 'interrupted' THEN 'interrupted'
                   ELSE 'pending'
               END AS call_outcome
        FROM tool_calls tc
        LEFT JOIN turns t ON t.id = tc.turn_id
        LEFT JOIN sessions s ON s.id = tc.session_id
        """
    )


@migrations()
def m009_capture(db: Database):
    """Transcripts: a line longer than the reader's limit (transcript_tail.MAX_LINE_BYTES) is skipped
    and reported instead of held in memory. claude_hooks/transcript_tail.py writes
    `transcript_files.skip_from`: the byte offset where such a line began while its end has not been
    read yet (NULL otherwise). The skipped line gets a `transcript_lines` row with an empty `raw`
    and its size in `parse_error`."""
    db.execute("ALTER TABLE transcript_files ADD COLUMN skip_from INTEGER")


@migrations()
def m012_machines(db: Database):
    """Provenance for databases merged from several machines (cra/merge writes `machines` and the
    `origin` columns; docs/merge.md), and the source of sessions recorded outside Claude Code
    (cra/transcripts/traces.py sets `sessions.source`; docs/traces.md).

    Rows are credited to a machine only when they came from another database: `origin` NULL means
    recorded here, so the hooks' INSERTs need no change. Derived rows (turns, signals, subagents,
    compactions) reach their origin through their session."""
    db.execute(
        """
        CREATE TABLE machines (
            id INTEGER PRIMARY KEY,
            host TEXT NOT NULL,
            user TEXT NOT NULL,              -- '' when unknown
            cra_version TEXT,                -- the cra last run there, as its database said
            first_seen TEXT,                 -- earliest activity recorded from it (events, sessions)
            last_seen TEXT,                  -- latest
            is_self INTEGER NOT NULL DEFAULT 0,  -- 1 on this database's own machine: rows with origin NULL
            UNIQUE (host, user)
        )
        """
    )
    db.execute("CREATE UNIQUE INDEX idx_machines_self ON machines (is_self) WHERE is_self = 1")
    # The rows merged by natural id; NULL: recorded on this database's own machine.
    for table in ("events", "sessions", "tool_calls", "transcript_lines", "messages"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN origin INTEGER REFERENCES machines(id)")
    # 'claude-code' (hooks, transcripts) or 'openai-trace' (`cra import --format openai-trace`, cra.record).
    db.execute("ALTER TABLE sessions ADD COLUMN source TEXT NOT NULL DEFAULT 'claude-code'")


@migrations()
def m010_serve(db: Database):
    """`cra serve`: the servers started and every request they answered (cra/serve writes these;
    docs/serve.md). No request or response bodies: they carry code, secrets and the user's key."""
    db.execute(
        """
        CREATE TABLE serve_servers (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,        -- ISO 8601 UTC
            stopped_at TEXT,                 -- NULL while it runs (or if it was killed)
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,              -- the address it listens on
            port INTEGER NOT NULL,
            model TEXT NOT NULL,             -- what answers locally: a run and its GGUF or adapter
            backend TEXT NOT NULL,           -- llama.cpp or hf
            upstream TEXT,                   -- where other sessions go; NULL: every request is local
            share REAL NOT NULL,             -- fraction of sessions answered locally; `cra serve set-share` changes it
            fallback INTEGER NOT NULL,       -- 1: unparsable or timed-out local answers are retried upstream
            shadow INTEGER NOT NULL,         -- 1: upstream answers, the local model's next action is only compared
            share_changed_at TEXT            -- when the share was last set
        )
        """
    )
    db.execute(
        """
        CREATE TABLE serve_requests (
            id INTEGER PRIMARY KEY,
            server_id INTEGER REFERENCES serve_servers(id),
            received_at TEXT NOT NULL,       -- ISO 8601 UTC
            endpoint TEXT NOT NULL,          -- messages, count_tokens, other
            session_id TEXT,                 -- Claude Code's session (X-Claude-Code-Session-Id or metadata.user_id)
            agent_id TEXT,                   -- set on a subagent's requests
            route TEXT NOT NULL,             -- local, upstream, shadow (upstream answered, local compared), none
            stream INTEGER,                  -- 1 when answered as server-sent events
            status INTEGER NOT NULL,         -- HTTP status sent (0: the client left before any)
            outcome TEXT NOT NULL,           -- ok, invalid_request, too_large, upstream_error, local_error, client_closed, ...
            latency_ms REAL,                 -- request received -> last byte sent
            first_token_ms REAL,             -- request received -> first content sent (streams)
            input_tokens INTEGER,
            output_tokens INTEGER,
            stop_reason TEXT,                -- end_turn, tool_use, max_tokens, stop_sequence
            tool_calls INTEGER,              -- tool_use blocks in the answer
            parsed INTEGER,                  -- local answers: 1 when the output read as text and valid tool calls
            fell_back INTEGER NOT NULL DEFAULT 0,  -- 1 when a local answer was replaced by upstream's
            fallback_reason TEXT,            -- unparsable, timeout, too_long, local_error
            shadow_agreed INTEGER,           -- shadow: 1 when the local next action matched upstream's
            shadow_detail TEXT,              -- JSON: both actions' kinds and tool names, argument similarity
            error TEXT                       -- what went wrong, redacted
        )
        """
    )
    db.execute("CREATE INDEX idx_serve_requests_session ON serve_requests (session_id, id)")
    db.execute("CREATE INDEX idx_serve_requests_server ON serve_requests (server_id, id)")


# tool_calls' columns in order, with the two a result fills resolved (m015_call_results).
_CALL_COLUMNS_BEFORE = (
    "tc.tool_use_id, tc.session_id, tc.agent_id, tc.agent_type, tc.prompt_id, tc.tool_name, tc.tool_input"
)
_CALL_COLUMNS_AFTER = (
    "tc.status, tc.error, tc.is_interrupt, tc.duration_ms, tc.pre_at, tc.post_at, tc.seq, tc.batch_id,"
    " tc.permission_requested, tc.permission_mode, tc.cwd, tc.synthetic_id, tc.message_uuid, tc.turn_id,"
    " tc.source, tc.origin, tc.result_uuid"
)


@migrations()
def m015_call_results(db: Database):
    """A call's result stored once: for calls only the transcript saw, `tool_calls.tool_response` and
    `response_text` stay empty and `result_uuid` names the message whose `tool_result` block holds what
    the model was shown (its line holds the structured `toolUseResult`). Hook-captured calls keep what
    the hook recorded. The view `tool_call_results` is tool_calls as readers want it: the same columns,
    `tool_response` and `response_text` resolved from the transcript where the row has none; every
    reader of a call's result reads it there (`tool_calls_with_turns` is built on it).
    cra/transcripts writes `result_uuid`."""
    db.execute("ALTER TABLE tool_calls ADD COLUMN result_uuid TEXT REFERENCES messages(uuid)")
    # The tool_result block's text as cra/transcripts/normalize.block_text reads it: a string as it is;
    # a list's text blocks, other blocks as `[type]`, joined by newlines; no content: ''.
    block_text = """coalesce(
        CASE json_type(b.value, '$.content')
            WHEN 'text' THEN b.value ->> '$.content'
            WHEN 'array' THEN coalesce((
                SELECT group_concat(part, char(10)) FROM (
                    SELECT CASE
                        WHEN p.type != 'object' THEN NULL
                        WHEN p.value ->> '$.type' = 'text' AND json_type(p.value, '$.text') = 'text'
                            THEN p.value ->> '$.text'
                        WHEN json_type(p.value, '$.type') = 'text' AND p.value ->> '$.type' != ''
                            THEN '[' || (p.value ->> '$.type') || ']'
                    END AS part
                    FROM json_each(b.value, '$.content') p ORDER BY p.key
                )), '')
            WHEN 'null' THEN ''
            ELSE b.value -> '$.content'
        END, '')"""
    response_text = f"""coalesce(tc.response_text, (
            SELECT {block_text}
            FROM messages m, json_each(m.content) b
            WHERE m.uuid = tc.result_uuid
              AND CASE WHEN b.type = 'object' THEN b.value ->> '$.tool_use_id' END = tc.tool_use_id
            ORDER BY b.key LIMIT 1))"""
    # toolUseResult sits on the entry, or on the message nested in a subagent's progress entry (2.1.x).
    # Only an object or array counts, as the import took it.
    tool_response = """coalesce(tc.tool_response, (
            SELECT CASE WHEN substr(r, 1, 1) IN ('{', '[') THEN r END FROM (
                SELECT CASE WHEN json_valid(l.raw) THEN l.raw -> CASE l.entry_type
                    WHEN 'progress' THEN '$.data.message.toolUseResult' ELSE '$.toolUseResult' END END AS r
                FROM messages m JOIN transcript_lines l ON l.id = m.line_id
                WHERE m.uuid = tc.result_uuid)))"""
    db.execute(
        f"""
        CREATE VIEW tool_call_results AS
        SELECT {_CALL_COLUMNS_BEFORE},
               {tool_response} AS tool_response,
               {response_text} AS response_text,
               {_CALL_COLUMNS_AFTER}
        FROM tool_calls tc
        """
    )
    db.execute("DROP VIEW tool_calls_with_turns")
    db.execute(
        """
        CREATE VIEW tool_calls_with_turns AS
        SELECT tc.*, t.turn_index, t.prompt_text, t.started_at AS turn_started_at, t.outcome AS turn_outcome,
               s.project_dir, s.cwd AS session_cwd, coalesce(t.model, s.model) AS model,
               CASE
                   WHEN tc.status = 'success' THEN 'succeeded'
                   WHEN tc.status IN ('failure', 'invalid', 'blocked') THEN 'errored'
                   WHEN tc.status = 'denied' THEN 'denied'
                   WHEN tc.status = 'interrupted' THEN 'interrupted'
                   ELSE 'pending'
               END AS call_outcome
        FROM tool_call_results tc
        LEFT JOIN turns t ON t.id = tc.turn_id
        LEFT JOIN sessions s ON s.id = tc.session_id
        """
    )
