"""Ingesting transcript files: `cra import` (backfill of existing history) and `sync` (catching up on
what the hooks tailed raw or could not reach within their budget).

Both go through `transcript_tail.tail_file` (the hook's code) with a normaliser attached, so a file
is read once, from where the last reader stopped, in bounded chunks that each store raw lines,
messages and the file's offset together. Chunks of several files share a transaction (`_Batches`,
about BATCH_BYTES of input each), which also rebuilds the turns of the streams its files changed:
interrupting an import loses at most the batch in progress, which the rerun reads again, and a
rerun adds nothing. A file that fails leaves nothing behind and the others go on.
"""

import gc
import json
import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from claude_hooks import transcript_tail

from .normalize import Normalizer, loads_bytes, normalise_pending
from .turns import rebuild_turns

DEFAULT_ROOT = os.path.join("~", ".claude", "projects")


@dataclass
class ImportResult:
    files: int = 0
    files_changed: int = 0
    bytes_read: int = 0
    lines: int = 0
    messages: int = 0
    tool_calls_new: int = 0
    tool_calls_linked: int = 0
    turns: int = 0
    sessions: set = field(default_factory=set)
    errors: list = field(default_factory=list)  # (path, message)

    def as_dict(self):
        d = dict(self.__dict__)
        d["sessions"] = len(self.sessions)
        d["errors"] = [{"path": p, "error": e} for p, e in self.errors]
        return d


def discover(paths):
    """Transcript files under `paths`: *.jsonl recursively (subagents included), and *.json files named
    explicitly (a transcript saved as one JSON array). Main transcripts come before their subagents."""
    found = []
    for p in paths:
        p = os.path.abspath(os.path.expanduser(p))
        if os.path.isdir(p):
            batch = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in files:
                    if name.endswith(".jsonl"):
                        batch.append(os.path.join(root, name))
            # Parents first: a subagent's link to its Agent call is then already there.
            batch.sort(key=lambda f: (os.sep + "subagents" + os.sep in f, f))
            found.extend(batch)
        else:
            found.append(p)  # a file (or something missing: reported when read)
    return list(dict.fromkeys(found))  # duplicates dropped, first place kept


def ingest_file(con, path, normalizer, result, savepoints=True):
    """Normalise what the hook stored raw, then read and normalise the file's new lines. Turns are
    rebuilt later, once per batch (rebuild_pending_turns). savepoints: see transcript_tail.begin."""
    known = con.execute("SELECT 1 FROM transcript_files WHERE path = ?", (path,)).fetchone() is not None
    if known:
        normalise_pending(con, path, normalizer, savepoints=savepoints)  # (lines a hook stored raw)

    def on_lines(con, path, rows):  # rows: one per line stored, in the chunk's transaction
        normalizer(con, path, rows)
        result.lines += len(rows)

    if path.endswith(".json"):
        n = _ingest_json_array(con, path, on_lines, savepoints)
    else:
        if not os.path.isfile(path):
            raise OSError("not a file" if os.path.exists(path) else "no such file")
        # Unreadable files fail here with the OS's reason, not silently as "nothing new".
        with open(path, "rb") as f:
            first = f.readline(1 << 16)
        if not known:
            _check_transcript(first)
        n = transcript_tail.tail_file(con, path, on_lines=on_lines, loads_bytes=loads_bytes, savepoints=savepoints)
    result.bytes_read += n
    if n:
        result.files_changed += 1
    return n


TRANSCRIPT_KEYS = ("type", "sessionId", "uuid", "parentUuid")


def _check_transcript(first_line):
    """Refuse JSONL files that are something else (hook logs, API dumps) before storing any line."""
    try:
        entry = json.loads(first_line)
    except (ValueError, RecursionError):
        return  # a garbled first line: the file may still be a transcript; bad lines are kept raw
    if isinstance(entry, dict) and not any(k in entry for k in TRANSCRIPT_KEYS):
        raise ValueError("not a Claude Code transcript (its first line has no type, sessionId or uuid)")


def rebuild_pending_turns(con, paths, normalizer, result):
    """Rebuild the turns of every stream that `paths` got new messages in (normalizer.touched, and
    the lines of any file normalised past its turns, as an interrupted run leaves them), inside the
    caller's transaction. Called once per batch, just before it commits (_Batches._finish), so the
    new turns reach the search index in one statement instead of one trigger run each
    (DEFERRED_FTS)."""
    streams = set(normalizer.touched)
    behind = []
    for path in paths:
        row = con.execute("SELECT norm_line_id, turns_line_id FROM transcript_files WHERE path = ?", (path,)).fetchone()
        if row is None or row[0] <= row[1]:
            continue
        behind.append(path)
        streams.update(
            con.execute(
                "SELECT DISTINCT session_id, agent_id FROM transcript_lines WHERE path = ? AND id > ? AND id <= ?"
                " AND entry_type IN ('user', 'assistant', 'progress') AND session_id IS NOT NULL",
                (path, row[1], row[0]),
            ).fetchall()
        )
    for session_id, agent_id in sorted(streams, key=lambda s: (s[0] or "", s[1] or "")):
        result.turns += rebuild_turns(con, session_id, agent_id)
        result.sessions.add(session_id)
    con.executemany("UPDATE transcript_files SET turns_line_id = norm_line_id WHERE path = ?", [(p,) for p in behind])
    normalizer.touched.clear()


def _ingest_json_array(con, path, on_lines, savepoints):
    """A transcript saved as a JSON array (one entry per element). Read whole (such files are small);
    elements past the ones already stored are appended, each re-serialised as its raw line."""
    st = os.stat(path)
    row = con.execute("SELECT size, mtime, line_count FROM transcript_files WHERE path = ?", (path,)).fetchone()
    if row is not None and row[0] == st.st_size and row[1] == st.st_mtime:
        return 0
    with open(path, "rb") as f:
        data = json.loads(f.read().decode("utf-8", "replace"))
    if not isinstance(data, list):
        raise ValueError("not a transcript: a .json file must hold a JSON array of entries")
    done = row[2] if row else 0
    session_id = next(
        (e["sessionId"] for e in data if isinstance(e, dict) and isinstance(e.get("sessionId"), str)), None
    )
    opened = transcript_tail.begin(con, savepoints)
    try:
        con.execute(
            "INSERT INTO transcript_files (path, session_id, format) VALUES (?,?,'json-array')"
            " ON CONFLICT(path) DO NOTHING",
            (path, session_id),
        )
        next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM transcript_lines").fetchone()[0]
        params: list[tuple] = []
        rows: list[tuple] = []
        for i, entry in enumerate(data[done:], start=done):
            raw = json.dumps(entry, ensure_ascii=False)
            e = entry if isinstance(entry, dict) else None
            line_id = next_id + len(params)
            params.append(
                (
                    line_id,
                    path,
                    i,
                    i,
                    (e or {}).get("sessionId") or session_id,
                    (e or {}).get("agentId"),
                    (e or {}).get("type"),
                    (e or {}).get("uuid"),
                    raw,
                    None if e is not None else "element is %s, not an object" % type(entry).__name__,
                )
            )
            rows.append((line_id, i, e))
        con.executemany(
            "INSERT INTO transcript_lines (id, path, line_no, byte_offset, session_id, agent_id, entry_type, uuid,"
            " raw, parse_error) VALUES (?,?,?,?,?,?,?,?,?,?)",
            params,
        )
        if rows:
            on_lines(con, path, rows)
        con.execute(
            "UPDATE transcript_files SET byte_offset = ?, size = ?, mtime = ?, inode = ?, line_count = ?,"
            " updated_at = ? WHERE path = ?",
            (
                st.st_size,
                st.st_size,
                st.st_mtime,
                st.st_ino,
                len(data),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                path,
            ),
        )
        transcript_tail.end(con, opened, commit=True)
    except BaseException:
        if con.in_transaction:
            transcript_tail.end(con, opened, commit=False)
        raise
    return st.st_size if params else 0


def import_paths(con, paths, progress=None):
    """Import every transcript under `paths`. progress(path) is called after each file.
    A file that cannot be read or parsed is recorded in result.errors and skipped."""
    return _ingest_all(con, discover(paths), ingest_file, progress)


def _ingest_all(con, files, ingest, progress=None):
    """ingest(con, path, normalizer, result, savepoints) for each file, in batched transactions; a
    file that cannot be read or parsed is recorded in result.errors, and the others go on."""
    result = ImportResult()
    normalizer = Normalizer()
    with (
        _collector_paused(),
        _plain_binding(),
        _page_cache(con, IMPORT_CACHE_KIB),
        _Batches(con, normalizer, result, ingest) as batches,
    ):
        for path in files:
            result.files += 1
            batches.add(path)
            if progress is not None:
                progress(path)
    result.messages = normalizer.counts["messages"]
    result.tool_calls_new = normalizer.counts["tool_calls_new"]
    result.tool_calls_linked = normalizer.counts["tool_calls_linked"]
    return result


# Input read per transaction. Files are committed in batches (a transaction per small file made
# COMMIT a fifth of an import's CPU: each rewrote a leaf of every random-key index, and each commit
# copies its pages to the WAL and checkpoints them). Each file's read offset commits with its rows, so
# an interrupted import loses its current batch only, and the next one reads those files again from
# where the last committed batch left them. A batch holds the write lock for about a second: hooks
# never wait for it (they spool), their background drainers do, well within their busy timeout.
BATCH_BYTES = 32 << 20
# FTS5 indexes whose per-row insert trigger is suspended inside a batch, caught up before its commit:
# one INSERT ... SELECT instead of one trigger run per row (about a tenth of the cost). Only the
# insert triggers: a row inserted in a batch is never updated or deleted in the same batch (the
# importer never changes a message's text, and turns are rebuilt once, in _finish), so the
# update/delete triggers only ever see rows the index already holds.
DEFERRED_FTS = (("messages", "messages_ai", "messages_fts"), ("turns", "turns_ai", "turns_fts"))


class _Batches:
    """The import's transactions: one per BATCH_BYTES of input (or the rest of the run), opened
    before a file, committed after the file that fills it. The batch's files get their turns
    rebuilt just before it commits.

    A file that fails leaves nothing behind. Files write into the batch without savepoints of their
    own: a savepoint makes SQLite copy each page it changes that the batch had already changed to a
    temporary file, about 4 MB for every MB imported (BENCHMARKS.md, Import). Most failures (a file
    that cannot be opened, or is not a transcript) come before any write; one that comes after
    rolls the batch back, and its other files are ingested again. In a caller's own transaction,
    which cannot be rolled back, each chunk takes a savepoint instead: there a failing file loses
    only the chunk that failed, and keeps the ones before it.

    FTS stays consistent whatever happens: the insert triggers are dropped inside the batch's
    transaction and recreated (with the index caught up) before it commits, so another connection
    never sees them missing, and a rollback brings them back with the rows."""

    def __init__(self, con, normalizer, result, ingest):
        self.con, self.normalizer, self.result, self.ingest = con, normalizer, result, ingest
        self.suspended = []  # what _suspend_fts_inserts returned, for _catch_up_fts
        self.files = []  # ingested in this batch: their turns are rebuilt before it commits
        self.start: tuple | None = None  # the normaliser's and result's state when the batch began, for _redo
        self.outer = con.in_transaction  # a caller's own transaction: nest in it, commit nothing

    def __enter__(self):
        return self

    def _start(self) -> tuple:
        assert self.start is not None  # set when a batch begins
        return self.start

    def add(self, path):
        """Ingest one file into the current batch (committing the previous one if it is full)."""
        if not self.outer:
            if self.con.in_transaction and self.result.bytes_read - self._start()[1] >= BATCH_BYTES:
                self._commit()
            if not self.con.in_transaction:
                self._begin()
        failure = self._try(path)
        if failure is not None:
            reason, wrote = failure
            self.result.errors.append((path, reason))
            if wrote:
                self._redo([path])

    def _try(self, path):
        """Ingest `path`. Returns None, or (why it failed, whether it had written anything that
        only rolling the batch back undoes)."""
        changes = self.con.total_changes
        touched = set(self.normalizer.touched)
        try:
            self.ingest(self.con, path, self.normalizer, self.result, savepoints=self.outer)
        except (OSError, ValueError, UnicodeError) as exc:
            if self.outer:
                # Its failing chunk's savepoint was rolled back: forget that chunk's streams. Chunks
                # of it that did commit are found again by their offsets (norm_line_id past
                # turns_line_id).
                self.normalizer.touched &= touched
                self.files.append(path)
                return _reason(exc), False
            return _reason(exc), self.con.total_changes != changes
        self.files.append(path)
        return None

    def _redo(self, failed):
        """Roll the batch back and ingest its files again, but those that `failed`. One that fails
        on the way after writing starts this over without it, so this ends."""
        failed = set(failed)
        while True:
            files = [f for f in self.files if f not in failed]
            self.con.execute("ROLLBACK")  # (the FTS triggers come back with it)
            self.suspended = []
            normalizer_state, bytes_read, files_changed, lines = self._start()
            self.normalizer.restore(normalizer_state)
            self.result.bytes_read, self.result.files_changed, self.result.lines = bytes_read, files_changed, lines
            self._begin()
            for path in files:
                failure = self._try(path)
                if failure is not None:
                    self.result.errors.append((path, failure[0]))
                    failed.add(path)
                    if failure[1]:
                        break
            else:
                return

    def _finish(self):
        """The batch's last work, in its transaction: turns, then the search index caught up."""
        rebuild_pending_turns(self.con, self.files, self.normalizer, self.result)
        self.files = []
        for suspended in self.suspended:
            _catch_up_fts(self.con, suspended)
        self.suspended = []

    def _begin(self):
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        self.files = []
        r = self.result
        self.start = (self.normalizer.saved(), r.bytes_read, r.files_changed, r.lines)
        for table, trigger, fts in DEFERRED_FTS:
            suspended = _suspend_fts_inserts(con, table, trigger, fts)
            if suspended is not None:
                self.suspended.append(suspended)

    def _commit(self):
        self._finish()
        self.con.execute("COMMIT")

    def __exit__(self, exc_type, exc, tb):
        if self.outer:
            if exc_type is None:
                self._finish()
            return False
        if not self.con.in_transaction:
            self.suspended = []  # (SQLite rolled it back itself: the triggers came back with it)
            return False
        if exc_type is None:
            self._commit()
        else:
            self.suspended = []
            self.con.execute("ROLLBACK")  # triggers and index as they were before the batch
        return False


def _suspend_fts_inserts(con, table, trigger, fts):
    """Drop `table`'s FTS insert trigger, inside the caller's transaction (other connections never
    see it missing; a rollback brings it back), and record the rowids inserted meanwhile with a
    temporary trigger: a deleted row's rowid can be reused, so "above the old maximum" would miss
    some. Returns what _catch_up_fts needs, or None when there is no such trigger."""
    row = con.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (trigger,)).fetchone()
    if row is None:
        return None
    columns = ", ".join("[%s]" % r[1] for r in con.execute("PRAGMA table_info([%s])" % fts))
    pending = "cra_fts_pending_%s" % table
    con.execute("CREATE TEMP TABLE IF NOT EXISTS [%s] (id INTEGER PRIMARY KEY)" % pending)
    con.execute("DROP TRIGGER [%s]" % trigger)
    con.execute(
        "CREATE TEMP TRIGGER [%s_ai] AFTER INSERT ON main.[%s] BEGIN"
        " INSERT OR IGNORE INTO [%s] (id) VALUES (new.rowid); END" % (pending, table, pending)
    )
    return table, fts, columns, pending, row[0]


def _catch_up_fts(con, suspended):
    """Index the rows inserted since _suspend_fts_inserts in one statement; put the trigger back."""
    table, fts, columns, pending, trigger_sql = suspended
    con.execute(
        "INSERT INTO [%s] (rowid, %s) SELECT rowid, %s FROM main.[%s] WHERE rowid IN (SELECT id FROM temp.[%s])"
        % (fts, columns, columns, table, pending)
    )
    con.execute("DROP TRIGGER temp.[%s_ai]" % pending)
    con.execute("DELETE FROM temp.[%s]" % pending)
    con.execute(trigger_sql)


# SQLite's page cache while importing (the default is 2 MB). A batch writes about twice its input
# in pages (raw lines, messages, tool calls, their indexes); with a cache smaller than that, pages
# spill to the WAL mid-transaction and are read back and written again when touched later. Twice
# BATCH_BYTES keeps a batch's pages in memory: a constant, so memory stays flat in corpus size.
IMPORT_CACHE_KIB = 2 * BATCH_BYTES >> 10


@contextmanager
def _page_cache(con, kib):
    """The connection's page cache at `kib` KiB for the duration (never smaller than it was)."""
    before = con.execute("PRAGMA cache_size").fetchone()[0]
    before_kib = -before if before < 0 else None  # (a positive value counts pages)
    if before_kib is None or before_kib < kib:
        con.execute("PRAGMA cache_size = -%d" % kib)
    try:
        yield
    finally:
        con.execute("PRAGMA cache_size = %d" % before)


@contextmanager
def _collector_paused():
    """Python's cycle collector off while importing: parsed entries hold no cycles (their memory goes
    by reference counting), but each chunk keeps thousands of them alive, which the collector would
    otherwise traverse again and again (5-10% of an import's CPU time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# sqlite3 binds str, int, float and bytearray parameters straight; any other value, None and bytes
# included, first goes through its adapter protocol, whose failed `__adapt__` lookup raises and
# clears an AttributeError: about 3,000 instructions per parameter, a tenth of an import's
# instructions (raw lines are bound as bytes, and message rows carry many NULLs). An adapter
# registered for the type is found first; these return the value as it is, so nothing stored changes.
_PLAIN_ADAPTERS: dict[type, Callable] = {type(None): lambda value: value, bytes: lambda value: value}


@contextmanager
def _plain_binding():
    """Identity adapters for None and bytes while importing (restored afterwards: the registry is
    the process's, shared by every connection)."""
    keys = {(t, sqlite3.PrepareProtocol): adapter for t, adapter in _PLAIN_ADAPTERS.items()}
    before = {key: sqlite3.adapters[key] for key in keys if key in sqlite3.adapters}
    sqlite3.adapters.update((key, before.get(key, adapter)) for key, adapter in keys.items())
    try:
        yield
    finally:
        for key in keys:
            if key in before:
                sqlite3.adapters[key] = before[key]
            else:
                sqlite3.adapters.pop(key, None)


def _reason(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def known_files(con):
    """Transcripts the database knows of: tailed ones, and every session's transcript_path (with its
    subagents) the hooks reported, even if no boundary reached them yet."""
    paths = [r[0] for r in con.execute("SELECT path FROM transcript_files WHERE format = 'jsonl' ORDER BY path")]
    other = {r[0] for r in con.execute("SELECT path FROM transcript_files WHERE format != 'jsonl'")}  # traces
    for (p,) in con.execute("SELECT transcript_path FROM sessions WHERE transcript_path IS NOT NULL"):
        if p.endswith(".jsonl") and p not in other:
            paths.append(p)
            paths.extend(transcript_tail.subagent_files(p))
    return list(dict.fromkeys(paths))  # duplicates dropped, first place kept


def sync(con, session_id=None):
    """Catch up: normalise raw lines and read what is new in every known transcript (or one session's).
    Files that vanished are skipped quietly (their lines are already stored)."""
    files = known_files(con)
    if session_id is not None:
        mine = {
            r[0]
            for r in con.execute(
                "SELECT path FROM transcript_files WHERE session_id = ? UNION"
                " SELECT transcript_path FROM sessions WHERE id = ? AND transcript_path IS NOT NULL",
                (session_id, session_id),
            )
        }
        extra = [s for p in mine if p.endswith(".jsonl") for s in transcript_tail.subagent_files(p)]
        files = [p for p in files if p in mine] + [p for p in extra if p not in mine]
    return _ingest_all(con, files, _catch_up)


def _catch_up(con, path, normalizer, result, savepoints=True):
    if os.path.exists(path):
        ingest_file(con, path, normalizer, result, savepoints)
    else:  # gone (Claude Code's cleanup): its lines are stored, only normalising may be left
        normalise_pending(con, path, normalizer, savepoints=savepoints)
