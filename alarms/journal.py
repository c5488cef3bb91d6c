"""The durable journal of alarm events: SQLite in WAL mode with synchronous=FULL.

Every event is appended (and fsynced) here BEFORE it is published, so an event a subscriber has seen
is on disk, and a subscriber that missed events asks for them by ``journal_seq``
(see :mod:`alarms.schema` for the two sequence numbers).

Layout: table ``events`` (``journal_seq`` primary key, ``bed_id``, ``bed_seq``, ``kind``,
``wall_time`` in Unix seconds, ``event_id`` unique, ``json`` = the event as published) and table
``counters`` (the last global sequence number and the last per-bed ones), so sequence numbers continue
after a restart and are never reused, also after pruning.

Schema versions: the stored JSON is kept as it was published, so a journal written before an upgrade
holds version-1 events. :meth:`Journal.since_json` (the catch-up replies) returns them as stored;
:meth:`Journal.since` parses versions 1 and 2 and refuses a newer version (a journal written by a
newer ictal, read after a downgrade) with :class:`alarms.schema.UnsupportedSchemaVersionError`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from alarms.config import JournalConfig
from alarms.schema import AlarmEvent, parse_event

_GLOBAL = ""  # counters row of the global sequence (bed ids are never empty)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    journal_seq INTEGER PRIMARY KEY,
    bed_id TEXT,
    bed_seq INTEGER,
    kind TEXT NOT NULL,
    wall_time REAL NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_wall_time ON events (wall_time);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class JournalError(OSError):
    """The journal could not be opened, written or read; the message names the file and the cause."""


class DuplicateEventError(ValueError):
    """An event whose ``event_id`` is already in the journal was appended again (a caller's bug)."""


class Journal:
    """Append-only, fsynced store of alarm events.

    Parameters
    ----------
    config : JournalConfig
        ``path`` of the SQLite file (created with its directory if absent) and ``retention_days``.

    Events older than the retention are pruned on opening and whenever :meth:`prune` is called (the
    publisher's heartbeat thread calls it every hour), never inside :meth:`append`.

    Raises
    ------
    JournalError
        If the file cannot be opened as an SQLite database in WAL mode.

    Notes
    -----
    Thread safety: one connection writes, under a lock, so any thread may call :meth:`append`; each
    reading thread gets its own connection (WAL readers never block the writer), so the catch-up
    thread can serve a long :meth:`since_json` while the daemon appends.
    Durability: ``journal_mode=WAL`` + ``synchronous=FULL`` makes SQLite fsync the WAL at every
    commit (https://www.sqlite.org/pragma.html#pragma_synchronous); one append is one commit.
    """

    def __init__(self, config: JournalConfig) -> None:
        self.config = config
        self.path = Path(config.path)
        self._lock = threading.Lock()
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            with self._conn:
                self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM counters WHERE name = ?", (_GLOBAL,)).fetchone()
            self._last_seq = int(row[0]) if row else 0
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"cannot open alarm journal {self.path}: {exc}") from exc
        self._closed = False
        self.prune()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise JournalError(f"alarm journal {self.path}: journal_mode is {mode!r}, expected 'wal'")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @property
    def last_seq(self) -> int:
        """The newest ``journal_seq`` (0 when nothing was ever appended)."""
        return self._last_seq

    def append(self, event: AlarmEvent) -> AlarmEvent:
        """Assign the sequence numbers, write the event and fsync.

        Parameters
        ----------
        event : AlarmEvent
            Any kind; ``journal_seq`` and ``bed_seq`` are overwritten.

        Returns
        -------
        event : AlarmEvent
            A copy with ``journal_seq`` (and ``bed_seq`` when it has a bed) set, exactly as stored.

        Raises
        ------
        JournalError
            If the write fails (disk full, read-only file, closed journal); nothing is stored then and
            the sequence numbers are not consumed.
        DuplicateEventError
            If an event with the same ``event_id`` is already stored.
        """
        return self.append_many([event])[0]

    def append_many(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        """Append several events in one transaction (one fsync); see :meth:`append`."""
        with self._lock:
            if self._closed:
                raise JournalError(f"alarm journal {self.path} is closed")
            stored: list[AlarmEvent] = []
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                seq = self._last_seq
                bed_last: dict[str, int] = {}
                rows = []
                for event in events:
                    seq += 1
                    bed_seq = None
                    if event.bed_id is not None:
                        if event.bed_id not in bed_last:
                            row = conn.execute("SELECT value FROM counters WHERE name = ?",
                                               (event.bed_id,)).fetchone()
                            bed_last[event.bed_id] = int(row[0]) if row else 0
                        bed_last[event.bed_id] += 1
                        bed_seq = bed_last[event.bed_id]
                    done = event.model_copy(update={"journal_seq": seq, "bed_seq": bed_seq})
                    rows.append((seq, done.bed_id, bed_seq, done.kind, done.wall_time.timestamp(),
                                 str(done.event_id), done.model_dump_json()))
                    stored.append(done)
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                conn.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)",
                                 [(_GLOBAL, seq), *bed_last.items()])
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                ids = [str(e.event_id) for e in events]
                marks = ",".join("?" * len(ids))
                dup = conn.execute(f"SELECT event_id, journal_seq FROM events WHERE event_id IN ({marks})",
                                   ids).fetchall()
                if not dup:
                    raise JournalError(f"cannot append to alarm journal {self.path}: {exc}") from exc
                raise DuplicateEventError(
                    f"event {dup[0][0]} is already in alarm journal {self.path} as journal_seq {dup[0][1]}; "
                    "an event is appended once (make a new event, with a new event_id)"
                ) from exc
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise JournalError(f"cannot append to alarm journal {self.path}: {exc}") from exc
            self._last_seq = seq
        return stored

    def since_json(self, seq: int, limit: int | None = None) -> list[str]:
        """The stored JSON of the events with ``journal_seq > seq``, oldest first.

        Parameters
        ----------
        seq : int
            Last sequence number already seen (0 for everything retained).
        limit : int, optional
            At most this many events.

        Raises
        ------
        JournalError
            If the read fails.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 (found {limit})")
        try:
            rows = self._reader().execute(
                "SELECT json FROM events WHERE journal_seq > ? ORDER BY journal_seq LIMIT ?",
                (int(seq), -1 if limit is None else int(limit)),
            ).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read alarm journal {self.path}: {exc}") from exc
        return [r[0] for r in rows]

    def since(self, seq: int, limit: int | None = None) -> list[AlarmEvent]:
        """The events with ``journal_seq > seq``, oldest first (see :meth:`since_json`).

        Raises
        ------
        JournalError
            If the read fails.
        alarms.schema.UnsupportedSchemaVersionError
            If a stored event has a schema version this ictal does not read (the message names it).
        """
        return [parse_event(text, where=f"in alarm journal {self.path}") for text in self.since_json(seq, limit)]

    def first_seq(self) -> int | None:
        """The oldest retained ``journal_seq`` (None when the journal holds no event)."""
        row = self._reader().execute("SELECT MIN(journal_seq) FROM events").fetchone()
        return None if row[0] is None else int(row[0])

    def prune(self, now: float | None = None) -> int:
        """Delete events older than ``retention_days``; return how many were deleted.

        Parameters
        ----------
        now : float, optional
            Current Unix time (s); default ``time.time()``.
        """
        cutoff = (time.time() if now is None else now) - self.config.retention_days * 86400.0
        with self._lock:
            try:
                cur = self._conn.execute("DELETE FROM events WHERE wall_time < ?", (cutoff,))
            except sqlite3.Error as exc:
                raise JournalError(f"cannot prune alarm journal {self.path}: {exc}") from exc
            return cur.rowcount

    def size_bytes(self) -> int:
        """Size on disk of the database and its WAL file, in bytes."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except FileNotFoundError:
                continue
        return total

    def close(self) -> None:
        """Close the writer connection (readers close with their threads)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
        reader = getattr(self._local, "conn", None)
        if reader is not None:
            reader.close()
            self._local.conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
