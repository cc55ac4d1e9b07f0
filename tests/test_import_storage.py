"""What the importer stores from each line: request shapes once per shape (m008), and content and
structured results serialised from the parsed entry (not cut out of the raw line by SQLite)."""

import json

import sqlite_utils

from cra.db import open_db
from cra.db.migrations import migrations
from cra.transcripts import importer

TOOLS = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}},
    {"name": "Read", "description": "Read a file — UTF-8 ✓", "input_schema": {"type": "object"}},
]
SYSTEM = [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be brief."}]


def _shape_line(session_id, shape_hash, tools=TOOLS, ts="2026-11-01T10:00:00.000Z"):
    return {
        "type": "api-request-shape",
        "sessionId": session_id,
        "shapeHash": shape_hash,
        "timestamp": ts,
        "version": "2.1.330",
        "shape": {"system": SYSTEM, "tools": tools},
    }


def _user(session_id, uuid, content, **extra):
    return {
        "type": "user",
        "sessionId": session_id,
        "uuid": uuid,
        "parentUuid": None,
        "timestamp": "2026-11-01T10:00:01.000Z",
        "message": {"role": "user", "content": content},
        **extra,
    }


def _write(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")


def test_a_shape_sent_by_many_sessions_is_stored_once(tmp_path):
    root = tmp_path / "projects" / "-p"
    for i in range(3):
        sid = f"s{i}"
        _write(
            root / f"{sid}.jsonl",
            [
                _shape_line(sid, "h-shared"),
                _shape_line(sid, "h-shared", ts="2026-11-01T10:05:00.000Z"),  # repeated per request
                _user(sid, f"u{i}", "hello"),
            ],
        )
    _write(root / "s9.jsonl", [_shape_line("s9", "h-other", tools=TOOLS[:1]), _user("s9", "u9", "hi")])
    db = open_db(str(tmp_path / "cra.db"))
    importer.import_paths(db.conn, [str(tmp_path / "projects")])

    assert db.execute("SELECT count(*) FROM request_shapes").fetchone()[0] == 2
    links = db.execute("SELECT session_id, shape_hash, timestamp FROM session_request_shapes ORDER BY 1").fetchall()
    assert links == [
        ("s0", "h-shared", "2026-11-01T10:00:00.000Z"),
        ("s1", "h-shared", "2026-11-01T10:00:00.000Z"),
        ("s2", "h-shared", "2026-11-01T10:00:00.000Z"),
        ("s9", "h-other", "2026-11-01T10:00:00.000Z"),
    ]
    # The api_shapes view reads as the per-session table did.
    rows = {r["session_id"]: r for r in db.query("SELECT * FROM api_shapes")}
    assert set(rows) == {"s0", "s1", "s2", "s9"}
    assert json.loads(rows["s1"]["tools"]) == TOOLS and json.loads(rows["s9"]["tools"]) == TOOLS[:1]
    assert rows["s2"]["system"] == "You are Claude Code.\n\nBe brief."
    assert json.loads(rows["s0"]["system_blocks"]) == SYSTEM
    # Stored once: the raw lines stay, each of them.
    assert db.execute("SELECT count(*) FROM transcript_lines WHERE entry_type = 'api-request-shape'").fetchone()[0] == 7


def test_upgrade_moves_per_session_shapes_into_shared_ones(tmp_path):
    path = str(tmp_path / "old.db")
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before=["m008_shared_request_shapes"])
    for sid in ("a", "b"):
        old["api_shapes"].insert(
            {
                "session_id": sid,
                "shape_hash": "h1",
                "system": "sys",
                "system_blocks": "[]",
                "tools": json.dumps(TOOLS),
                "timestamp": f"t-{sid}",
                "version": "2.1.3",
            }
        )
    old.conn.close()

    db = open_db(path, drain=False)
    assert db.execute("SELECT type FROM sqlite_master WHERE name = 'api_shapes'").fetchone()[0] == "view"
    assert db.execute("SELECT shape_hash, system, tools FROM request_shapes").fetchall() == [
        ("h1", "sys", json.dumps(TOOLS))
    ]
    assert db.execute("SELECT session_id, timestamp FROM api_shapes ORDER BY 1").fetchall() == [
        ("a", "t-a"),
        ("b", "t-b"),
    ]
    # Writers of the old table still work: the view takes INSERTs.
    db.execute("INSERT INTO api_shapes (session_id, shape_hash, system, tools) VALUES ('c', 'h2', 's2', '[]')")
    assert db.execute("SELECT system FROM api_shapes WHERE session_id = 'c'").fetchone()[0] == "s2"


def test_content_and_structured_results_are_the_parsed_values(tmp_path):
    sid = "s1"
    result = {"stdout": "héllo ✓\n", "stderr": "", "interrupted": False, "nested": {"n": [1, 2.5, None, True]}}
    entries = [
        _user(sid, "u1", "run it — please"),  # a string content becomes one text block
        {
            "type": "assistant",
            "sessionId": sid,
            "uuid": "a1",
            "parentUuid": "u1",
            "timestamp": "2026-11-01T10:00:02.000Z",
            "message": {
                "role": "assistant",
                "id": "msg_1",
                "model": "claude-x",
                "content": [
                    {"type": "text", "text": "Running."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "echo héllo"}},
                ],
            },
        },
        _user(
            sid,
            "u2",
            [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "héllo ✓"}],
            parentUuid="a1",
            toolUseResult=result,
        ),
        # 2.1.38: a subagent's messages nested in progress entries; its result has a structured form.
        {
            "type": "progress",
            "sessionId": sid,
            "uuid": "p0",
            "parentToolUseID": "toolu_agent",
            "data": {
                "type": "agent_progress",
                "agentId": "ag1",
                "message": {
                    "type": "assistant",
                    "uuid": "n0",
                    "timestamp": "2026-11-01T10:00:02.500Z",
                    "message": {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_n", "name": "Glob", "input": {"pattern": "*.py"}}
                        ],
                    },
                },
            },
        },
        {
            "type": "progress",
            "sessionId": sid,
            "uuid": "p1",
            "parentToolUseID": "toolu_agent",
            "data": {
                "type": "agent_progress",
                "agentId": "ag1",
                "message": {
                    "type": "user",
                    "uuid": "n1",
                    "timestamp": "2026-11-01T10:00:03.000Z",
                    "toolUseResult": {"files": ["a.py"]},
                    "message": {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_n", "content": "a.py"}],
                    },
                },
            },
        },
    ]
    _write(tmp_path / "projects" / "-p" / f"{sid}.jsonl", entries)
    db = open_db(str(tmp_path / "cra.db"))
    importer.import_paths(db.conn, [str(tmp_path / "projects")])

    content = dict(db.execute("SELECT uuid, content FROM messages").fetchall())
    assert json.loads(content["u1"]) == [{"type": "text", "text": "run it — please"}]
    assert json.loads(content["a1"]) == entries[1]["message"]["content"]
    assert json.loads(content["u2"]) == entries[2]["message"]["content"]
    assert "héllo ✓" in content["u2"]  # stored as UTF-8 text, not \u escapes
    call = db.execute(
        "SELECT tool_response, response_text, status, tool_input FROM tool_call_results WHERE tool_use_id = 'toolu_1'"
    ).fetchone()
    assert json.loads(call[0]) == result and call[1:3] == ("héllo ✓", "success")
    assert json.loads(call[3]) == {"command": "echo héllo"}
    nested = db.execute("SELECT tool_response FROM tool_call_results WHERE tool_use_id = 'toolu_n'").fetchone()
    assert nested is not None and json.loads(nested[0]) == {"files": ["a.py"]}
    # Serialised as UTF-8 bytes and cast on the way in: stored as text, which JSON functions and
    # Datasette read as such, never as blobs.
    kinds = db.execute(
        "SELECT DISTINCT typeof(content), typeof(tool_use_ids), typeof(tool_result_ids) FROM messages"
        " UNION SELECT DISTINCT typeof(tool_input), typeof(tool_response), 'text' FROM tool_call_results"
    ).fetchall()
    assert {k for row in kinds for k in row} <= {"text", "null"} and ("text", "null", "text") in kinds
    assert db.execute(
        "SELECT json_extract(tool_response, '$.stdout') FROM tool_call_results WHERE tool_use_id = 'toolu_1'"
    ).fetchone() == (result["stdout"],)


def test_values_orjson_refuses_are_serialised_by_json():
    from cra.transcripts.normalize import _json

    assert json.loads(_json({"a": [1, "é", None]})) == {"a": [1, "é", None]}
    assert _json({"a": "é"}) == '{"a":"é"}'.encode()  # UTF-8 bytes, for CAST(? AS TEXT)
    assert json.loads(_json({"big": 2**70})) == {"big": 2**70}  # past 64 bits
    # A lone surrogate (valid as a JSON escape) cannot be stored as UTF-8: replaced, as the hook does.
    assert json.loads(_json({"s": "x\ud800y"})) == {"s": "x?y"}
    assert _json(None) is None


def test_parsing_line_bytes_with_orjson_stores_what_the_hook_stores():
    """`cra` parses lines with orjson, the hook with the standard library: the same lines must give
    the same rows, whatever orjson refuses (it sends those down the careful path)."""
    from claude_hooks import transcript_tail
    from cra.transcripts.normalize import loads_bytes

    assert loads_bytes is not None
    lines = [
        b'{"type":"user","sessionId":"s","uuid":"u1","message":{"role":"user","content":"h\xc3\xa9llo"}}',
        b'{"type":"user","uuid":"u2","bad":"\xff\xfe"}',  # invalid UTF-8
        b'{"type":"assistant","uuid":"u3","x":NaN}',  # NaN: json takes it, orjson does not
        b'{"type":"system","uuid":"u4","s":"\\ud800"}',  # a lone surrogate escape
        b"[1, 2]",  # not an object
        b'{"type": "user", "truncated": tr',  # truncated
        b"   ",  # blank: skipped
        b'{"type":"deep","v":' + b"[" * 2000 + b"]" * 2000 + b"}",  # deeper than orjson goes
    ]
    data = b"\n".join(lines) + b"\n"
    args = (data, 0, 1, 0, "/p/s.jsonl", 0, "s", None)
    hook = transcript_tail.parse_lines(*args)
    cra = transcript_tail.parse_lines(*args, loads_bytes=loads_bytes)

    def comparable(params, rows):
        # raw as text (the fast path binds the line's bytes, a view of them, which SQLite stores as text);
        # NaN != NaN, so entries as repr
        return (
            [p[:9] + ((str(p[9], "utf-8") if not isinstance(p[9], str) else p[9]),) + p[10:] for p in params],
            [(r[0], r[1], repr(r[2])) for r in rows],
        )

    assert comparable(*cra) == comparable(*hook)
    # Integers past 64 bits come back as floats from orjson: the double the JavaScript writer held
    # (Claude Code's numbers are doubles), so nothing it wrote is lost; the raw line keeps the digits.
    big = b'{"type":"x","n":123456789012345680000}\n'
    (params,), (row,) = transcript_tail.parse_lines(big, 0, 1, 0, "/p/s.jsonl", 0, "s", None, loads_bytes)
    assert row[2]["n"] == float(123456789012345680000) and params[9] == big[:-1]
    params = {p[8] or p[0]: p for p in cra[0]}
    assert params["u2"][10] == lines[1] and params["u2"][11] == "invalid UTF-8"
    assert params["u1"][11] is None and params["u3"][11] is None and params["u4"][11] is None
    errors = [p[11] for p in cra[0] if p[8] is None]
    assert errors[0] == "line is list, not an object" and errors[1].startswith("invalid JSON")
    assert "recursion" in errors[2]  # the deep line: past orjson's limit, and json's too
    assert len(cra[0]) == 7  # the blank line is skipped


def test_lines_are_cut_at_each_newline_with_their_file_offsets():
    """Empty and whitespace-only lines are skipped but counted in the offsets; what follows the
    last newline (a line still being written) is left for the next read."""
    from claude_hooks import transcript_tail
    from cra.transcripts.normalize import loads_bytes

    a, b, c = (b'{"type":"user","uuid":"%s"}' % u for u in (b"a", b"b", b"c"))
    data = a + b"\n\n  \t\n" + b + b"\n" + c + b"\n" + b'{"type":"user","uu'
    for loads in (None, loads_bytes):  # the hook's path and cra's
        params, rows = transcript_tail.parse_lines(data, 1000, 7, 3, "/p/s.jsonl", 0, "s", None, loads)
        got = [(p[0], p[3], p[4], p[9].encode() if isinstance(p[9], str) else bytes(p[9])) for p in params]
        assert got == [(7, 3, 1000, a), (8, 4, 1000 + data.index(b), b), (9, 5, 1000 + data.index(c), c)]
        assert [r[:2] for r in rows] == [(7, 3), (8, 4), (9, 5)]
    assert transcript_tail.parse_lines(b'{"partial', 0, 1, 0, "/p", 0, "s", None) == ([], [])
    assert transcript_tail.parse_lines(b"\n\n", 0, 1, 0, "/p", 0, "s", None) == ([], [])


def test_new_databases_get_large_pages_and_old_ones_keep_theirs(tmp_path):
    """A new database takes 16 KB pages (transcript lines mostly fit one page); a database created
    with another page size keeps it (WAL fixes it) and imports the same."""
    import sqlite3

    fresh = open_db(str(tmp_path / "new.db"), drain=False)
    assert fresh.execute("PRAGMA page_size").fetchone()[0] == 16384
    old_path = str(tmp_path / "old.db")
    con = sqlite3.connect(old_path)
    con.execute("PRAGMA page_size = 4096")
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    old = open_db(old_path, drain=False)
    assert old.execute("PRAGMA page_size").fetchone()[0] == 4096
    tree = tmp_path / "projects" / "-p"
    _write(tree / "s1.jsonl", [_user("s1", "u1", "hello"), _user("s1", "u2", "again")])
    for db in (fresh, old):
        result = importer.import_paths(db.conn, [str(tree.parent)])
        assert not result.errors and result.messages == 2 and result.turns == 2


def test_the_import_page_cache_is_the_callers_again_afterwards(tmp_path):
    db = open_db(str(tmp_path / "cra.db"), drain=False)
    db.execute("PRAGMA cache_size = -3000")
    seen = []
    importer.import_paths(
        db.conn,
        [str(tmp_path / "none")],
        progress=lambda path: seen.append(db.execute("PRAGMA cache_size").fetchone()[0]),
    )
    assert seen == [-importer.IMPORT_CACHE_KIB]
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -3000


def test_the_import_leaves_sqlite3s_adapters_as_it_found_them(tmp_path):
    """The import registers identity adapters for None and bytes (process-wide), and takes them
    back afterwards, restoring one the caller had registered."""
    import sqlite3

    def mine(value):
        return value

    key = (bytes, sqlite3.PrepareProtocol)
    none_key = (type(None), sqlite3.PrepareProtocol)
    sqlite3.register_adapter(bytes, mine)
    try:
        db = open_db(str(tmp_path / "cra.db"), drain=False)
        during = []
        importer.import_paths(
            db.conn, [str(tmp_path / "none")], progress=lambda path: during.append(none_key in sqlite3.adapters)
        )
        assert during == [True]
        assert sqlite3.adapters[key] is mine and none_key not in sqlite3.adapters
    finally:
        sqlite3.adapters.pop(key, None)
