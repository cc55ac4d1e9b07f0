"""The database in Datasette: tables and columns described from the migrations, foreign keys declared
(so Datasette links rows), canned queries; `cra browse` runs the real Datasette."""

import json
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.db import open_db
from cra.db.migrations import migrations
from cra.db.schema import datasette_metadata


def test_metadata_describes_every_table_and_column_from_the_migrations():
    meta = datasette_metadata("cra")
    tables = meta["databases"]["cra"]["tables"]
    assert tables["tool_calls"]["columns"]["status"].startswith("pending, success, failure")
    assert "Hook capture" in tables["events"]["description"]
    assert not any(name.endswith("_fts") or name.startswith("messages_fts_") for name in tables)
    assert "_sqlite_migrations" not in tables
    queries = meta["databases"]["cra"]["queries"]
    assert {"tool_outcomes", "failed_calls", "search_messages"} <= set(queries)


def test_every_canned_query_runs(recorded_db):
    db = open_db(str(recorded_db))
    for query in datasette_metadata("cra")["databases"]["cra"]["queries"].values():
        params = {"query": "Read"} if ":query" in query["sql"] else {}
        db.execute(query["sql"], params).fetchall()  # raises on a stale column or table


def test_foreign_keys_are_declared_on_an_existing_database_and_nothing_else_changes(tmp_path):
    """A database made before m013 (every earlier migration applied, rows in it) gains the declared links
    on open, keeps its rows, its full-text triggers and its integrity, and still takes rows whose parent
    does not exist yet (the links are not enforced: hooks write calls before their session row)."""
    import sqlite_utils

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before="m013_foreign_keys")
    old.execute("INSERT INTO sessions (id) VALUES ('s1')")
    old.execute(
        "INSERT INTO messages (uuid, session_id, role, is_sidechain, is_compact_summary, is_meta, is_api_error,"
        " text) VALUES ('m1', 's1', 'user', 0, 0, 0, 0, 'please read the config')"
    )
    old.conn.commit()
    old.close()

    db = open_db(str(path), drain=False)
    links = {(fk.column, fk.other_table, fk.other_column) for fk in db["messages"].foreign_keys}
    assert {("session_id", "sessions", "id"), ("turn_id", "turns", "id")} <= links
    assert ("path", "transcript_files", "path") in {
        (fk.column, fk.other_table, fk.other_column) for fk in db["transcript_lines"].foreign_keys
    }
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'config'").fetchone()[0] == 1
    db.execute(
        "INSERT INTO tool_calls (tool_use_id, session_id, status, seq, permission_requested, synthetic_id, source)"
        " VALUES ('t1', 'not-yet', 'pending', 1, 0, 0, 'hook')"
    )
    # Another connection (a hook's drainer) sees the new schema.
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA foreign_key_list(tool_calls)").fetchall()
    other.close()


def test_datasette_shows_descriptions_links_and_queries(recorded_db):
    pytest.importorskip("datasette")
    import asyncio

    from datasette.app import Datasette

    open_db(str(recorded_db)).conn.close()
    name = recorded_db.stem
    ds = Datasette([str(recorded_db)], metadata=datasette_metadata(name))

    async def fetch():
        page = await ds.client.get(f"/{name}/tool_calls?_size=5")
        rows = await ds.client.get(f"/{name}/tool_calls.json?_labels=on&_shape=array&_size=5")
        query = await ds.client.get(f"/{name}/tool_outcomes.json?_shape=array")
        return page, rows, query

    page, rows, query = asyncio.run(fetch())
    assert page.status_code == 200
    assert "pending, success, failure" in page.text  # the column's note, from the migration
    assert f'href="/{name}/sessions/' in page.text  # session_id links to its session row
    labelled = rows.json()[0]["session_id"]
    assert isinstance(labelled, dict) and set(labelled) == {"value", "label"}
    assert query.status_code == 200 and sum(r["calls"] for r in query.json()) > 0


def test_cra_browse_runs_datasette_on_the_database(recorded_db):
    pytest.importorskip("datasette")
    name = recorded_db.stem
    proc = subprocess.run(
        [sys.executable, "-m", "cra", "browse", "-d", str(recorded_db), "--", "--get", f"/{name}/tool_outcomes.json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["rows"]


def test_cra_browse_metadata_is_named_after_the_file(tmp_path):
    result = CliRunner().invoke(cli, ["browse", "-d", str(tmp_path / "team.db"), "--metadata"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.output)["databases"]) == ["team"]
