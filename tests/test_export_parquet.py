"""`cra export parquet`: every table written by month, read back with DuckDB and compared with SQLite
(counts, types, partitions, joins); reruns replace; bad values and bad options are clear."""

import json
import sqlite3
import sys

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.db import open_db
from cra.errors import MissingDependencyError, NotFoundError

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from cra.export.parquet import export_parquet, exported_tables  # noqa: E402


@pytest.fixture
def exported(recorded_db, tmp_path):
    """The recorded sessions with signals computed and a merged machine, exported."""
    from cra.signals.store import update_signals

    db = open_db(str(recorded_db), drain=False)
    assert update_signals(db).computed > 0
    db.execute("INSERT INTO machines (host, user, first_seen) VALUES ('laptop', 'ann', '2026-10-02T10:00:00Z')")
    db.conn.commit()
    out = tmp_path / "parquet"
    result = CliRunner().invoke(cli, ["export", "parquet", str(out), "-d", str(recorded_db), "--json"])
    assert result.exit_code == 0, result.output
    return db, out, json.loads(result.output)


def scan(out, table):
    return f"read_parquet('{out}/{table}/*/*.parquet', hive_partitioning = true)"


def test_every_table_reads_back_with_duckdb_with_its_rows_and_types(exported):
    db, out, manifest = exported
    tables = exported_tables(db.conn)
    assert set(manifest["tables"]) == set(tables)
    assert {"events", "sessions", "tool_calls", "messages", "turns", "signals", "machines", "runs"} <= set(tables)
    assert not any(t.endswith("_fts") or "_fts_" in t for t in tables)
    duck = duckdb.connect()
    for table in tables:
        n = db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]
        assert duck.execute(f"SELECT count(*) FROM {scan(out, table)}").fetchone()[0] == n, table
        assert manifest["tables"][table]["rows"] == n
        # The schema's types: INTEGER -> BIGINT, TEXT -> VARCHAR, BLOB -> BLOB, REAL -> DOUBLE.
        described = {r[0]: r[1] for r in duck.execute(f"DESCRIBE SELECT * FROM {scan(out, table)}").fetchall()}
        for _, name, declared, *_ in db.execute(f"PRAGMA table_info([{table}])"):
            expected = {"INTEGER": "BIGINT", "TEXT": "VARCHAR", "BLOB": "BLOB", "REAL": "DOUBLE"}.get(
                declared.upper(), "VARCHAR"
            )
            assert described[name] == expected, (table, name, declared)
        assert described["month"] == "VARCHAR"
    # An empty table keeps its columns.
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert "base_model" in {r[0] for r in duck.execute(f"DESCRIBE SELECT * FROM {scan(out, 'runs')}").fetchall()}


def test_rows_are_partitioned_by_month(exported):
    db, out, manifest = exported
    duck = duckdb.connect()
    by_month = "SELECT substr(received_at, 1, 7), count(*) FROM events GROUP BY 1 ORDER BY 1"
    assert duck.execute(f"SELECT month, count(*) FROM {scan(out, 'events')} GROUP BY 1 ORDER BY 1").fetchall() == [
        tuple(r) for r in db.execute(by_month).fetchall()
    ]
    assert manifest["tables"]["events"]["months"] == [r[0] for r in db.execute(by_month)]
    assert (out / "machines" / "month=2026-10" / "part-0.parquet").is_file()
    # Lines have no date of their own: their session's month.
    (month,) = {m for (m,) in duck.execute(f"SELECT DISTINCT month FROM {scan(out, 'transcript_lines')}").fetchall()}
    assert month == manifest["tables"]["sessions"]["months"][0]


def test_joins_agree_with_sqlite(exported):
    db, out, _ = exported
    duck = duckdb.connect()
    for table in ("turns", "tool_calls", "messages", "signals", "sessions"):
        duck.execute(f"CREATE VIEW {table} AS SELECT * EXCLUDE (month) FROM {scan(out, table)}")
    queries = [
        # Tool calls per turn, with the turn's prompt.
        "SELECT t.session_id, t.turn_index, t.prompt_text, count(tc.tool_use_id) AS calls,"
        " sum(CASE WHEN tc.status = 'success' THEN 1 ELSE 0 END) AS ok"
        " FROM turns t LEFT JOIN tool_calls tc ON tc.turn_id = t.id"
        " GROUP BY t.session_id, t.turn_index, t.prompt_text ORDER BY 1, 2",
        # Messages and output tokens per session, through turns.
        "SELECT s.id, count(m.uuid), sum(m.output_tokens) FROM sessions s JOIN turns t ON t.session_id = s.id"
        " JOIN messages m ON m.turn_id = t.id GROUP BY s.id ORDER BY 1",
        # Signals beside their turn.
        "SELECT t.session_id, t.turn_index, sg.sequence_pattern, sg.tool_count, sg.workflow"
        " FROM signals sg JOIN turns t ON t.id = sg.turn_id ORDER BY 1, 2",
    ]
    for sql in queries:
        expected = sorted((tuple(r) for r in db.execute(sql).fetchall()), key=repr)
        assert expected, sql
        assert sorted(duck.execute(sql).fetchall(), key=repr) == expected, sql


def test_rerun_replaces_and_one_table_can_be_exported(exported, recorded_db):
    db, out, _ = exported
    n = db.execute("SELECT count(*) FROM events").fetchone()[0]
    again = export_parquet(db.conn, str(out), ["events"])
    assert again["tables"]["events"]["rows"] == n
    assert duckdb.connect().execute(f"SELECT count(*) FROM {scan(out, 'events')}").fetchone()[0] == n
    manifest = json.loads((out / "manifest.json").read_text())
    assert "turns" in manifest["tables"]  # the other tables' entries are kept
    assert not [p for p in out.iterdir() if p.name.startswith(".cra-export-")]
    with pytest.raises(NotFoundError, match="no table nonsense"):
        export_parquet(db.conn, str(out), ["nonsense"])


def test_a_value_not_of_its_columns_type_is_written_as_null_and_counted(recorded_db, tmp_path):
    con = sqlite3.connect(recorded_db)
    with con:
        con.execute("UPDATE tool_calls SET duration_ms = 'slow' WHERE rowid = (SELECT min(rowid) FROM tool_calls)")
    con.close()
    db = open_db(str(recorded_db), drain=False)
    manifest = export_parquet(db.conn, str(tmp_path / "out"), ["tool_calls"])
    assert manifest["tables"]["tool_calls"]["mismatched"] == {"duration_ms": 1}
    nulls = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM {scan(tmp_path / 'out', 'tool_calls')} WHERE duration_ms IS NULL")
        .fetchone()[0]
    )
    assert nulls == db.execute("SELECT count(*) FROM tool_calls WHERE typeof(duration_ms) != 'integer'").fetchone()[0]


def test_without_pyarrow_the_error_names_the_extra(recorded_db, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match=r"cra-claude\[parquet\]"):
        export_parquet(open_db(str(recorded_db), drain=False).conn, str(tmp_path / "out"))
    result = CliRunner().invoke(cli, ["export", "parquet", str(tmp_path / "out"), "-d", str(recorded_db)])
    assert result.exit_code == 1 and "Error: Parquet export needs pyarrow" in result.output
