"""`cra merge`: databases from three machines built from different recorded sessions (two overlapping,
one in an older schema), merged by natural ids: counts, provenance, turns equal to one database's,
idempotence, order independence, and every kind of bad source."""

import hashlib
import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import PINNED_RECORDED, RECORDED, build_fixture_db
from hypothesis import given
from hypothesis import strategies as st

from cra.cli import cli
from cra.db import open_db
from cra.merge.merge import TABLES, keep, merge_databases

ALPHA = ("tools", "failures")
BETA_MORE = ("parallel", "denied")  # beta is a copy of alpha (same events, lines, calls) plus these
OLD = ("subagent", "compact")  # plus the failures transcript only: another machine read it, no hooks


def name_machine(path, host, user):
    """What `cra` does the first time it opens a machine's own database (CRA_HOME's)."""
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO machines (host, user, cra_version, is_self) VALUES (?, ?, '0.0.9', 1)", (host, user))
    con.close()


@pytest.fixture(scope="module")
def machines(tmp_path_factory):
    missing = [n for n in ALPHA + BETA_MORE + OLD if not (RECORDED / n / "hooks.jsonl").is_file()]
    if missing:
        pytest.skip(f"recorded fixtures missing: {missing}")
    root = tmp_path_factory.mktemp("machines")
    alpha = build_fixture_db(root / "alpha.db", [RECORDED / n for n in ALPHA])
    name_machine(alpha, "alpha-host", "ann")
    beta = root / "beta.db"
    shutil.copyfile(alpha, beta)  # ann's database, copied to a second machine which recorded more
    build_fixture_db(beta, [RECORDED / n for n in BETA_MORE])
    con = sqlite3.connect(beta)
    con.execute("ATTACH ? AS alpha", (str(alpha),))
    with con:
        con.execute("UPDATE machines SET host = 'beta-host', user = 'ben' WHERE is_self = 1")
        # The copied rows are alpha's: credited to it, as a merge of alpha into beta would have.
        cur = con.execute("INSERT INTO machines (host, user, cra_version) VALUES ('alpha-host', 'ann', '0.0.9')")
        for table, key in (
            ("events", "event_uid"),
            ("sessions", "id"),
            ("tool_calls", "tool_use_id"),
            ("transcript_lines", "id"),
            ("messages", "uuid"),
        ):
            con.execute(
                f"UPDATE {table} SET origin = ? WHERE {key} IN (SELECT {key} FROM alpha.{table})", (cur.lastrowid,)
            )
    con.close()
    old = build_fixture_db(
        root / "old.db",
        [RECORDED / n for n in OLD],
        transcript_paths=[str(RECORDED / "failures" / "transcripts")],
        schema_before="m012_machines",
    )
    everything = build_fixture_db(root / "all.db", [RECORDED / n for n in ALPHA + BETA_MORE + OLD])
    return {"alpha": alpha, "beta": beta, "old": old, "all": everything, "root": root}


def _since_m012() -> list[str]:
    """The migrations an "old" database (built before m012_machines) still needs: m012 and any added after."""
    import sqlite_utils

    from cra.db.migrations import migrations

    names = [m.name for m in migrations.pending(sqlite_utils.Database(memory=True))]
    return names[names.index("m012_machines") :]


SINCE_M012 = _since_m012()


def fresh(tmp_path, name="dest.db"):
    return open_db(str(tmp_path / name), drain=False)


def copy(src, tmp_path, name):
    dest = tmp_path / name
    shutil.copyfile(src, dest)
    return open_db(str(dest), drain=False)


def canonical(db):
    """Every merged and derived table keyed by natural ids, with ids replaced by what they point at and
    `origin` by the (host, user) it resolves to: equal for databases that hold the same records."""
    con = db.conn
    own = con.execute("SELECT host, user FROM machines WHERE is_self = 1").fetchone()
    names = {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, host, user FROM machines")}

    def who(origin):
        return names[origin] if origin is not None else own

    def rows(sql, drop=()):
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        out = [dict(zip(cols, r)) for r in cur]
        for r in out:
            for column in drop:  # ids this database gave
                del r[column]
            if "origin" in r:
                r["origin"] = who(r["origin"])
        return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))

    turn = (
        "(SELECT t.session_id || '/' || coalesce(t.agent_id, '') || '/' || t.turn_index FROM turns t WHERE t.id = {})"
    )
    line = "(SELECT l.path || '#' || l.generation || ':' || l.line_no FROM transcript_lines l WHERE l.id = {})"
    return {
        "machines": sorted(
            (r[0], r[1], r[2], r[3], r[4])
            for r in con.execute("SELECT host, user, cra_version, first_seen, last_seen FROM machines")
        ),
        "events": rows("SELECT * FROM events", drop=("id",)),
        "sessions": rows("SELECT * FROM sessions"),
        "tool_calls": rows(
            "SELECT tc.*, (SELECT event_uid FROM events WHERE id = tc.batch_id) AS batch_id,"
            f" {turn.format('tc.turn_id')} AS turn_id FROM tool_calls tc"
        ),
        "transcript_lines": rows("SELECT * FROM transcript_lines", drop=("id",)),
        "transcript_files": rows(
            "SELECT path, session_id, agent_id, byte_offset, line_count, generation, format,"
            " (SELECT count(*) FROM transcript_lines l WHERE l.path = f.path AND l.id > f.norm_line_id) AS pending"
            " FROM transcript_files f"
        ),
        "messages": rows(
            f"SELECT m.*, {line.format('m.line_id')} AS line_id, {turn.format('m.turn_id')} AS turn_id FROM messages m"
        ),
        "turns": rows("SELECT * FROM turns", drop=("id",)),
        "signals": rows(f"SELECT s.*, {turn.format('s.turn_id')} AS turn_id, NULL AS computed_at FROM signals s"),
        "subagents": rows("SELECT * FROM subagents"),
        "compactions": rows("SELECT * FROM compactions", drop=("id",)),
        "request_shapes": rows("SELECT * FROM request_shapes"),
        "session_request_shapes": rows("SELECT * FROM session_request_shapes"),
    }


def count(db, table):
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_three_machines_merge_into_what_one_machine_would_hold(machines, tmp_path):
    dest = fresh(tmp_path)
    report = merge_databases(dest, [str(machines["alpha"]), str(machines["beta"]), str(machines["old"])])
    assert not report.failed
    alpha, beta, old = report.sources
    a, b = open_db(str(machines["alpha"]), drain=False), open_db(str(machines["beta"]), drain=False)

    # Alpha: all new. Beta: alpha's rows again (duplicates) and its own (new).
    assert alpha.tables["events"].new == count(a, "events") and alpha.tables["events"].duplicate == 0
    assert beta.tables["events"].duplicate == count(a, "events")
    assert beta.tables["events"].new == count(b, "events") - count(a, "events")
    assert beta.tables["messages"].duplicate == count(a, "messages")
    assert beta.tables["transcript_lines"].duplicate == count(a, "transcript_lines")
    assert all(c.conflicting == 0 for c in beta.tables.values())
    # Old: the failures transcript another machine imported without hooks. Its lines and messages
    # are duplicates; its calls (seen in the transcript only) conflict with alpha's hook-captured ones,
    # which are kept, with anything only the transcript knew filled in.
    assert old.migrated == SINCE_M012
    failures_lines = dest.execute("SELECT count(*) FROM transcript_lines WHERE path LIKE '%failures%'").fetchone()[0]
    assert old.tables["transcript_lines"].duplicate == failures_lines > 0
    assert (
        old.tables["tool_calls"].conflicting
        == dest.execute("SELECT count(*) FROM tool_calls WHERE tool_use_id LIKE 'toolu_mock_failures%'").fetchone()[0]
    )
    assert dest.execute(
        "SELECT DISTINCT source FROM tool_calls WHERE tool_use_id LIKE 'toolu_mock_failures%'"
    ).fetchall() == [("both",)]

    # Whatever was recorded on any machine is here once, and the turns are what one database that
    # recorded everything holds.
    everything = open_db(str(machines["all"]), drain=False)
    for table, key in (("messages", "uuid"), ("tool_calls", "tool_use_id"), ("sessions", "id")):
        assert {r[0] for r in dest.execute(f"SELECT {key} FROM {table}")} == {
            r[0] for r in everything.execute(f"SELECT {key} FROM {table}")
        }, table
    turn_cols = "session_id, agent_id, turn_index, prompt_text, final_answer, outcome, tool_call_count, message_count"
    merged_turns = sorted(dest.execute(f"SELECT {turn_cols} FROM turns").fetchall(), key=repr)
    assert merged_turns == sorted(everything.execute(f"SELECT {turn_cols} FROM turns").fetchall(), key=repr)
    assert len(merged_turns) >= len(PINNED_RECORDED) - 1
    statuses = "SELECT tool_use_id, status, turn_id IS NOT NULL FROM tool_calls ORDER BY 1"
    assert dest.execute(statuses).fetchall() == everything.execute(statuses).fetchall()


def test_every_merged_row_knows_its_machine(machines, tmp_path):
    dest = fresh(tmp_path)
    merge_databases(dest, [str(machines["alpha"]), str(machines["beta"]), str(machines["old"])])
    hosts = {r[0]: (r[1], r[2]) for r in dest.execute("SELECT id, host, user FROM machines")}
    # The old database never named its machine: it is named after its file.
    assert sorted(hosts.values()) == [("alpha-host", "ann"), ("beta-host", "ben"), ("old", "")]
    for table in ("events", "sessions", "tool_calls", "transcript_lines", "messages"):
        assert dest.execute(f"SELECT count(*) FROM {table} WHERE origin IS NULL").fetchone()[0] == 0, table
    by_session = dict(dest.execute("SELECT s.id, m.host FROM sessions s JOIN machines m ON m.id = s.origin").fetchall())
    scenario_of = {
        sid: path.split("/")[-3] if "/transcripts/" in path else path
        for sid, path in dest.execute("SELECT id, transcript_path FROM sessions")
    }
    for sid, host in by_session.items():
        scenario = next(n for n in ALPHA + BETA_MORE + OLD if n in scenario_of[sid])
        expected = "alpha-host" if scenario in ALPHA else "beta-host" if scenario in BETA_MORE else "old"
        assert host == expected, (scenario, host)
    # first/last seen: the span of each machine's activity, its cra version as its database said.
    row = dest.execute("SELECT first_seen, last_seen, cra_version FROM machines WHERE host = 'beta-host'").fetchone()
    span = dest.execute(
        "SELECT min(received_at), max(received_at) FROM events WHERE origin = (SELECT id FROM machines"
        " WHERE host = 'beta-host')"
    ).fetchone()
    assert row[0] <= span[0] and row[1] >= span[1] and row[2] == "0.0.9"


def test_this_machines_own_database_is_named_and_its_rows_come_home(machines, tmp_path):
    from cra.db.machine import this_machine

    db = open_db()  # CRA_HOME's database: the one the hooks write to on this machine
    ((host, user, is_self),) = db.execute("SELECT host, user, is_self FROM machines").fetchall()
    assert (host, user, is_self) == (*this_machine(), 1)
    # A database recorded here (a backup, say) merges back as this machine's own rows: origin NULL.
    backup = tmp_path / "backup.db"
    shutil.copyfile(machines["alpha"], backup)
    con = sqlite3.connect(backup)
    with con:
        con.execute("UPDATE machines SET host = ?, user = ? WHERE is_self = 1", this_machine())
    con.close()
    report = merge_databases(db, [str(backup)])
    assert report.sources[0].tables["events"].new > 0
    assert db.execute("SELECT count(*) FROM events WHERE origin IS NOT NULL").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM machines").fetchone()[0] == 1


def test_merging_twice_changes_nothing(machines, tmp_path):
    dest = fresh(tmp_path)
    sources = [str(machines["alpha"]), str(machines["beta"]), str(machines["old"])]
    merge_databases(dest, sources)
    before = canonical(dest)
    again = merge_databases(dest, sources)
    assert canonical(dest) == before
    for source in again.sources:
        assert source.turns_rebuilt == 0 and source.sessions_changed == 0
        for name, c in source.tables.items():
            assert c.new == 0 and c.updated == 0, (source.path, name, c)


def test_the_order_of_merging_does_not_matter(machines, tmp_path):
    sources = [str(machines["alpha"]), str(machines["beta"]), str(machines["old"])]
    forward, backward = fresh(tmp_path, "forward.db"), fresh(tmp_path, "backward.db")
    merge_databases(forward, sources)
    merge_databases(backward, sources[::-1])
    assert canonical(forward) == canonical(backward)


def test_a_into_b_equals_b_into_a(machines, tmp_path):
    # Two machines' own databases with overlapping sessions (beta holds alpha's), each merged into
    # the other: the same records, credited to the same machines.
    a = copy(machines["alpha"], tmp_path, "a.db")
    b = copy(machines["beta"], tmp_path, "b.db")
    merge_databases(a, [str(machines["beta"])])
    merge_databases(b, [str(machines["alpha"])])
    ca, cb = canonical(a), canonical(b)
    assert ca == cb
    assert ca["turns"] and ca["messages"]


def test_conflicting_versions_are_kept_alike_whichever_comes_first(machines, tmp_path):
    # The same transcript position read differently on two machines, and one tool call finished on
    # one machine while still pending on the other.
    left, right = tmp_path / "left.db", tmp_path / "right.db"
    shutil.copyfile(machines["alpha"], left)
    shutil.copyfile(machines["alpha"], right)
    con = sqlite3.connect(right)
    with con:
        con.execute("UPDATE machines SET host = 'right-host' WHERE is_self = 1")
        (line_id,) = con.execute("SELECT max(id) FROM transcript_lines").fetchone()
        con.execute("UPDATE transcript_lines SET raw = raw || ' ' WHERE id = ?", (line_id,))
        (call,) = con.execute("SELECT tool_use_id FROM tool_calls WHERE status = 'success' LIMIT 1").fetchone()
        con.execute("UPDATE tool_calls SET status = 'pending', tool_response = NULL WHERE tool_use_id = ?", (call,))
    con.close()
    one, two = fresh(tmp_path, "one.db"), fresh(tmp_path, "two.db")
    first = merge_databases(one, [str(left), str(right)]).sources[1]
    merge_databases(two, [str(right), str(left)])
    assert first.tables["transcript_lines"].conflicting == 1
    assert first.tables["tool_calls"].conflicting == 1
    assert canonical(one) == canonical(two)
    # Both versions of the line are stored; the finished call is kept, with its response.
    lines = one.execute("SELECT count(*) FROM transcript_lines").fetchone()[0]
    assert lines == count(open_db(str(left), drain=False), "transcript_lines") + 1
    assert one.execute(
        "SELECT status, tool_response IS NOT NULL FROM tool_calls WHERE tool_use_id = ?", (call,)
    ).fetchone() == ("success", 1)


def test_an_older_schema_is_migrated_in_a_copy_and_the_source_left_as_it_was(machines, tmp_path):
    digest = hashlib.sha256(machines["old"].read_bytes()).hexdigest()
    dest = fresh(tmp_path)
    (result,) = merge_databases(dest, [str(machines["old"])]).sources
    assert result.error is None and result.migrated == SINCE_M012
    assert hashlib.sha256(machines["old"].read_bytes()).hexdigest() == digest
    assert "machines" not in sqlite3.connect(machines["old"]).execute(
        "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table'"
    ).fetchone()[0].split(",")
    assert result.tables["messages"].new == count(dest, "messages") > 0


def test_signals_are_recomputed_for_the_changed_sessions_only(machines, tmp_path):
    from cra.signals.store import update_signals

    dest = copy(machines["alpha"], tmp_path, "dest.db")
    computed = update_signals(dest).computed
    assert computed > 0
    before = dict(dest.execute("SELECT turn_id, computed_at || input_key FROM signals").fetchall())
    (result,) = merge_databases(dest, [str(machines["beta"])]).sources
    new_turns = dest.execute(
        "SELECT count(*) FROM turns WHERE session_id NOT IN (SELECT session_id FROM turns WHERE id IN (%s))"
        % ",".join(map(str, before))
    ).fetchone()[0]
    assert result.signals == {"computed": new_turns, "unchanged": 0, "removed": 0} and new_turns > 0
    after = dict(dest.execute("SELECT turn_id, computed_at || input_key FROM signals").fetchall())
    assert {k: after[k] for k in before} == before  # alpha's sessions were not touched
    assert update_signals(dest).computed == 0  # nothing left stale


def test_bad_sources_are_reported_and_the_others_merged(machines, tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just text " * 100)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    newer = tmp_path / "newer.db"
    shutil.copyfile(machines["alpha"], newer)
    con = sqlite3.connect(newer)
    with con:
        con.execute("INSERT INTO _sqlite_migrations (migration_set, name) VALUES ('cra', 'm999_future')")
    con.close()
    dest_path = tmp_path / "dest.db"
    dest = open_db(str(dest_path), drain=False)
    report = merge_databases(
        dest,
        [str(tmp_path / "missing.db"), str(text), str(other), str(newer), str(dest_path), str(machines["alpha"])],
    )
    errors = [s.error for s in report.sources]
    assert "no database file" in errors[0]
    assert "not a readable SQLite database" in errors[1]
    assert "not a cra database" in errors[2]
    assert "newer cra" in errors[3] and "m999_future" in errors[3] and "upgrade cra" in errors[3]
    assert "destination database itself" in errors[4]
    assert errors[5] is None
    assert count(dest, "events") == count(open_db(str(machines["alpha"]), drain=False), "events")

    result = CliRunner().invoke(cli, ["merge", str(text), str(machines["beta"]), "-d", str(dest_path)])
    assert result.exit_code == 1
    assert f"Skipped {text}: " in result.output
    assert "1 of 2 source(s) could not be merged" in result.output
    assert "Merged " + str(machines["beta"]) in result.output


def test_cli_text_and_json(machines, tmp_path):
    dest = str(tmp_path / "team.db")
    result = CliRunner().invoke(cli, ["merge", str(machines["alpha"]), str(machines["old"]), "-d", dest])
    assert result.exit_code == 0, result.output
    assert "from alpha-host (user ann)" in result.output
    assert f"its schema was migrated ({', '.join(SINCE_M012)})" in result.output
    assert "messages" in result.output and "turns rebuilt" in result.output
    result = CliRunner().invoke(cli, ["merge", str(machines["alpha"]), "-d", dest, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["destination"] == dest
    (source,) = data["sources"]
    assert source["machine"] == {"host": "alpha-host", "user": "ann"}
    assert source["tables"]["events"]["new"] == 0 and source["tables"]["events"]["duplicate"] > 0
    assert "runs" in data["not_merged"]


_present = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b", "pending", "success", "hook", "both"]))
_values = st.one_of(st.none(), _present)


@pytest.mark.parametrize("table", [t for t in TABLES if t.name in ("sessions", "tool_calls", "messages")])
@given(data=st.data())
def test_keep_is_symmetric_and_idempotent(table, data):
    columns = {
        "sessions": ("id", "cwd", "started_at", "first_event_at", "last_event_at", "ended_at"),
        "tool_calls": ("tool_use_id", "status", "source", "tool_response", "error"),
        "messages": ("uuid", "text", "model"),
    }[table.name]
    # NOT NULL columns (a call's status and source) never hold NULL, as in the schema.
    not_null = {"status", "source"}
    row = st.fixed_dictionaries({c: _present if c in not_null else _values for c in columns})
    a, b = data.draw(row), data.draw(row)
    kept, _ = keep(table, a, b)
    assert keep(table, b, a)[0] == kept
    assert keep(table, kept, a)[0] == kept and keep(table, kept, b)[0] == kept
