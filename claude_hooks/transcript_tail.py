"""Incremental transcript tailing: copy the new complete lines of a transcript into `transcript_lines`.

Standard library only: the hook calls this at boundary events (Stop, SubagentStop, PreCompact,
SessionEnd, UserPromptSubmit, SessionStart) with a byte budget, and `cra` calls it without one.
Normalising the lines into messages and turns is `cra`'s work (cra/transcripts); here the raw lines
only have to reach the database before Claude Code's cleanup deletes the file.

Per file, `transcript_files` remembers how far it has been read. A line is consumed only once its
newline is written (Claude Code may be mid-write). A file that shrank, or whose first bytes changed,
was rewritten or replaced: reading starts again from 0 in a new generation, and the lines already
stored stay (they may be the only copy).
"""

import os
import time
import zlib

# json.loads without importing the json package (this runs inside the hook; see fastjson's docstring).
from claude_hooks import fastjson as json

# For type checkers only (mypy reads the name as true): the hook never pays for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    LoadsBytes = Callable[[bytes], object]
    OnLines = Callable[[sqlite3.Connection, str, list[tuple]], None]

BOUNDARY_EVENTS = ("Stop", "SubagentStop", "PreCompact", "SessionEnd", "UserPromptSubmit", "SessionStart")

# Bytes a single hook call may read over all files: ~10 ms of work on a slow machine. A longer
# backlog is left for the next boundary or for `cra sync` / `cra import`.
HOOK_BUDGET_BYTES = 2 << 20
CHUNK_BYTES = 8 << 20  # lines per transaction when uncapped: bounded memory, resumable imports
HEAD_LEN = 1024  # bytes checksummed as the rewrite/rotation guard


def file_identity(path: str) -> tuple[str, str | None]:
    """(session_id, agent_id) from a transcript's path: `<session>.jsonl` or
    `<session>/subagents/agent-<id>.jsonl`."""
    name = os.path.basename(path)
    stem = name.rsplit(".", 1)[0]
    parent = os.path.dirname(path)
    if stem.startswith("agent-") and os.path.basename(parent) == "subagents":
        return os.path.basename(os.path.dirname(parent)), stem[len("agent-") :]
    return stem, None


def _head_hash(f, length):
    # A checksum, not a digest: it only has to notice a rewritten file (zlib imports for free).
    f.seek(0)
    return "%08x" % zlib.crc32(f.read(length))


def _str(value):
    return value if isinstance(value, str) else None


def decode_line(line: bytes) -> tuple[str, bytes | None, dict | None, str | None]:
    """(text, raw_bytes or None, entry dict or None, parse_error or None) for one line's bytes."""
    raw_bytes = None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
        raw_bytes = line
    try:
        entry = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return text, raw_bytes, None, "invalid JSON: %s" % exc
    if not isinstance(entry, dict):
        return text, raw_bytes, None, "line is %s, not an object" % type(entry).__name__
    return text, raw_bytes, entry, ("invalid UTF-8" if raw_bytes is not None else None)


def parse_lines(
    data: bytes,
    offset: int,
    next_id: int,
    line_no: int,
    path: str,
    generation: int,
    session_id: str | None,
    agent_id: str | None,
    loads_bytes: "LoadsBytes | None" = None,
) -> tuple[list[tuple], list[tuple]]:
    """The complete lines of `data` (what follows its last newline is left out), blank ones skipped,
    as (params for transcript_lines, rows for on_lines). The hot loop of `cra import`: one parse per
    line (and a decode, without loads_bytes), nothing else per line that can be avoided.

    loads_bytes, if given, parses a line's bytes straight, raising ValueError for anything but valid
    UTF-8 JSON (`cra` passes orjson.loads: no decode step); what it refuses takes the careful path."""
    loads = json.loads
    params: list[tuple] = []
    rows: list[tuple] = []
    add_param = params.append
    add_row = rows.append
    line_id = next_id
    # Lines found with find (memchr) rather than data.split(b"\n"), which tests every byte in a
    # loop of its own: a sixth of the raw lines' instructions. What follows the last newline is
    # left out: nothing, or a line still being written.
    find = data.find
    start = 0
    last = data.rfind(b"\n")
    while start <= last:
        end = find(b"\n", start)
        line = data[start:end]
        pos = offset + start  # the line's byte offset in the file
        start = end + 1
        if line and not line.isspace():  # non-blank, without copying the line to strip it
            entry = None
            if loads_bytes is not None:
                try:
                    entry = loads_bytes(line)
                except ValueError:
                    pass
            else:
                try:
                    entry = loads(line.decode("utf-8"))
                except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
                    pass
            if entry.__class__ is dict:
                get = entry.get
                sid = get("sessionId")
                aid = get("agentId")
                etype = get("type")
                uuid = get("uuid")
                # The raw line is stored as its own bytes, read as text by SQLite: valid UTF-8 as
                # the decoded text would be, without encoding that text back to UTF-8.
                add_param(
                    (
                        line_id,
                        path,
                        generation,
                        line_no,
                        pos,
                        sid if sid.__class__ is str and sid else session_id,
                        aid if aid.__class__ is str and aid else agent_id,
                        etype if etype.__class__ is str else None,
                        uuid if uuid.__class__ is str else None,
                        line,
                        None,
                        None,
                    )
                )
                add_row((line_id, line_no, entry))
            else:  # not valid UTF-8, not JSON, or not an object: the careful path
                text, raw_bytes, entry, error = decode_line(line)
                if entry is not None:
                    sid, aid = _str(entry.get("sessionId")) or session_id, _str(entry.get("agentId")) or agent_id
                    etype, uuid = _str(entry.get("type")), _str(entry.get("uuid"))
                else:
                    sid, aid, etype, uuid = session_id, agent_id, None, None
                add_param((line_id, path, generation, line_no, pos, sid, aid, etype, uuid, text, raw_bytes, error))
                add_row((line_id, line_no, entry))
            line_id += 1
            line_no += 1
    return params, rows


def tail_file(
    con: "sqlite3.Connection",
    path: str,
    max_bytes: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    on_lines: "OnLines | None" = None,
    loads_bytes: "LoadsBytes | None" = None,
    savepoints: bool = True,
) -> int:
    """Store the complete lines of `path` not read yet. Returns the number of bytes consumed.

    max_bytes caps the bytes read in this call (a single line longer than the cap waits for an
    uncapped caller). on_lines(con, path, rows), if given, runs inside each chunk's transaction with
    rows = [(line_id, line_no, entry or None)], the lines' parsed entries, so a caller can normalise
    without parsing twice; if it raises, that chunk is rolled back and the error propagates.
    loads_bytes: see parse_lines. savepoints: see begin(); with False, inside the caller's
    transaction, a chunk that fails is not rolled back: the caller must roll back its transaction.
    """
    try:
        f = open(path, "rb")
    except OSError:
        return 0  # not written yet (SessionStart), or gone: nothing to do
    with f:
        consumed = 0
        while max_bytes is None or consumed < max_bytes:
            budget = chunk_bytes if max_bytes is None else min(chunk_bytes, max_bytes - consumed)
            n, at_end = _tail_chunk(con, f, path, budget, max_bytes is None, on_lines, loads_bytes, savepoints)
            consumed += n
            if not n or at_end:
                break  # (a file still growing is read on by the next caller)
        return consumed


def _tail_chunk(con, f, path, budget, uncapped, on_lines, loads_bytes, savepoints):
    """Read and store one chunk. Returns (bytes consumed, whether the file was read to its end)."""
    st = os.fstat(f.fileno())
    opened = begin(con, savepoints)
    try:
        # Read the position inside the write lock: two hooks tailing one file never both take a line.
        row = con.execute(
            "SELECT byte_offset, generation, line_count, head_hash, head_len, session_id, agent_id"
            " FROM transcript_files WHERE path = ?",
            (path,),
        ).fetchone()
        session_id, agent_id = file_identity(path)
        if row is None:
            offset, generation, line_count, head_hash, head_len = 0, 0, 0, None, 0
        else:
            offset, generation, line_count, head_hash, head_len = row[:5]
            session_id, agent_id = row[5] or session_id, row[6] or agent_id
            rotated = st.st_size < offset or (head_hash is not None and _head_hash(f, head_len) != head_hash)
            if rotated:
                offset, generation, line_count, head_hash, head_len = 0, generation + 1, 0, None, 0
        if st.st_size <= offset:
            # Nothing written: released, not rolled back (a savepoint's ROLLBACK TO would make SQLite
            # reload the schema when the caller's transaction changed it: `cra import` does).
            end(con, opened, commit=True)
            return 0, True
        f.seek(offset)
        data = f.read(min(budget, st.st_size - offset))
        last = data.rfind(b"\n")
        while last < 0 and uncapped and len(data) < st.st_size - offset:
            # A line longer than the chunk: only an uncapped caller reads it whole.
            more = f.read(budget)
            if not more:
                break
            data += more
            last = data.rfind(b"\n")
        if last < 0:
            end(con, opened, commit=True)  # nothing written: no complete line yet (or too long for this caller)
            return 0, True
        at_end = offset + len(data) >= st.st_size  # nothing left but (at most) a partial line
        next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM transcript_lines").fetchone()[0]
        params, rows = parse_lines(
            data, offset, next_id, line_count, path, generation, session_id, agent_id, loads_bytes
        )
        con.executemany(
            "INSERT INTO transcript_lines (id, path, generation, line_no, byte_offset, session_id, agent_id,"
            " entry_type, uuid, raw, raw_bytes, parse_error) VALUES (?,?,?,?,?,?,?,?,?,CAST(? AS TEXT),?,?)",
            params,
        )
        new_offset = offset + last + 1
        if head_len < HEAD_LEN and new_offset > head_len:
            # Grow the guard with the file until it covers HEAD_LEN bytes (only bytes already read).
            head_len = min(HEAD_LEN, new_offset)
            head_hash = _head_hash(f, head_len)
        con.execute(
            "INSERT INTO transcript_files (path, session_id, agent_id, byte_offset, size, inode, mtime,"
            " head_hash, head_len, line_count, generation, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(path) DO UPDATE SET byte_offset = excluded.byte_offset, size = excluded.size,"
            " inode = excluded.inode, mtime = excluded.mtime, head_hash = excluded.head_hash,"
            " head_len = excluded.head_len, line_count = excluded.line_count,"
            " generation = excluded.generation, updated_at = excluded.updated_at,"
            " session_id = coalesce(transcript_files.session_id, excluded.session_id),"
            " agent_id = coalesce(transcript_files.agent_id, excluded.agent_id)",
            (
                path,
                session_id,
                agent_id,
                new_offset,
                st.st_size,
                st.st_ino,
                st.st_mtime,
                head_hash,
                head_len,
                line_count + len(params),
                generation,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            ),
        )
        # After the file row exists: the normaliser records its progress there.
        if on_lines is not None and rows:
            on_lines(con, path, rows)
        end(con, opened, commit=True)
        return last + 1, at_end
    except BaseException:
        if con.in_transaction:
            end(con, opened, commit=False)
        raise


# What begin() opened, for end().
OWN = "own"  # a transaction of its own: BEGIN IMMEDIATE ... COMMIT
SAVEPOINT = "savepoint"  # inside the caller's transaction, rolled back alone on an error
CALLERS = "callers"  # the caller's transaction as it is: the caller rolls all of it back on an error


def begin(con: "sqlite3.Connection", savepoint: bool = True) -> str:
    """Open a chunk's transaction: BEGIN IMMEDIATE, or, when the caller already holds one (`cra
    import` commits several files at once), a savepoint, unless savepoint=False: a savepoint makes
    SQLite copy every page it touches that the transaction had already changed to a temporary file
    (rollback needs them), which a caller that rolls its whole transaction back on an error can do
    without. Returns what end() needs."""
    if not con.in_transaction:
        con.execute("BEGIN IMMEDIATE")
        return OWN
    if savepoint:
        con.execute("SAVEPOINT tail_chunk")
        return SAVEPOINT
    return CALLERS


def end(con: "sqlite3.Connection", opened: str, commit: bool) -> None:
    """Close what begin() opened: a savepoint's work then commits or rolls back with the caller's."""
    if opened == OWN:
        con.execute("COMMIT" if commit else "ROLLBACK")
    elif opened == SAVEPOINT and con.in_transaction:  # (SQLite may have rolled it all back on an I/O error)
        if not commit:
            con.execute("ROLLBACK TO tail_chunk")
        con.execute("RELEASE tail_chunk")


def subagent_files(transcript_path: str) -> list[str]:
    """The subagent transcripts of a session: `<session>/subagents/agent-*.jsonl`."""
    directory = os.path.join(transcript_path[: -len(".jsonl")], "subagents")
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith("agent-") and n.endswith(".jsonl"))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names]


def tail_for_event(con: "sqlite3.Connection", payload: dict, budget: int = HOOK_BUDGET_BYTES) -> int:
    """The hook's part: tail the transcripts a boundary event names, within `budget` bytes in all."""
    name = payload.get("hook_event_name")
    if name not in BOUNDARY_EVENTS:
        return 0
    paths = []
    for key in ("agent_transcript_path", "transcript_path"):
        p = payload.get(key)
        if isinstance(p, str) and p.endswith(".jsonl") and p not in paths:
            paths.append(p)
    if name == "SessionEnd" and paths:
        # Subagents whose SubagentStop came before their file was flushed.
        paths.extend(subagent_files(paths[-1]))
    used = 0
    for p in paths:
        if used >= budget:
            break
        used += tail_file(con, p, max_bytes=budget - used)
    return used
