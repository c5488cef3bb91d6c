"""The durable journal of alarm events: SQLite in WAL mode with synchronous=FULL.

Every event is appended (and fsynced) here BEFORE it is published, so an event a subscriber has seen
is on disk, and a subscriber that missed events asks for them by ``journal_seq``
(see :mod:`ictal.alarms.schema` for the two sequence numbers).

Layout: table ``events`` (``journal_seq`` primary key, ``bed_id``, ``bed_seq``, ``kind``,
``wall_time`` in Unix seconds, ``event_id`` unique, ``json`` = the event as published) and table
``counters`` (the last global sequence number and the last per-bed ones), so sequence numbers continue
after a restart and are never reused, also after pruning.

Journal identity: table ``meta`` holds ``journal_id``, a random UUID created with the file
(:attr:`Journal.journal_id`); every appended event is stored with it (see "Journal identity" in
:mod:`ictal.alarms.schema`). A journal file from before schema version 3 gets one the first time it is opened.

Faults of the file (:meth:`Journal.check`, called before every append and by the publisher at every
heartbeat): the path no longer names the open file (``deleted``: unlinked; ``replaced``: another inode
at the path) or the file cannot be written (``unwritable``). An append never writes to a file that is
no longer at its path: it raises :class:`JournalFaultError` instead, and :meth:`Journal.recreate`
saves what the open file holds beside the path (``<path>.<fault>-<UTC stamp>``, via ``VACUUM INTO``),
moves whatever is at the path aside (``<path>.<fault>-<UTC stamp>.found``, and ``.found.wal`` /
``.found.shm`` for the side files, named so that SQLite never pairs them by itself), and opens a new, empty journal with a new
``journal_id`` (``journal_seq`` starts again at 1; subscribers resynchronise on the new id).

Locking mode: ``locking_mode=EXCLUSIVE`` is set before WAL mode is entered, so SQLite keeps the
WAL index in heap memory and never creates or maps a ``-shm`` file (https://www.sqlite.org/wal.html,
"Use of WAL without shared memory"). A memory-mapped ``-shm`` made immutable, truncated or unwritable
under a running daemon killed it with SIGBUS (measured: immutable or truncated ``-shm`` -> Bus error at
the next commit, exit 135); without the mapping such a file is never touched. The price: no other
connection (process) can read the journal while it is open; the catch-up thread reads through the
writer connection, under the same lock (measured: a page of 10,000 events takes about 15 ms, 1,000
about 1.5 ms). Read the file offline after the daemon stopped, or through the catch-up endpoint.

Schema versions: the stored JSON is kept as it was published, so a journal written before an upgrade
holds version-1 events. :meth:`Journal.since_json` (the catch-up replies) returns them as stored;
:meth:`Journal.since` parses versions 1, 2 and 3 and refuses a newer version (a journal written by a
newer ictal, read after a downgrade) with :class:`ictal.alarms.schema.UnsupportedSchemaVersionError`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ictal.alarms.config import JournalConfig
from ictal.alarms.schema import AlarmEvent, parse_event

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
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

READ_LOCK_TIMEOUT_S = 2.0
"""Longest a catch-up read waits for the journal lock (held by an append on a hung disk): it then fails
with :class:`JournalError` ("busy") instead of holding the catch-up thread."""

JournalFault = Literal["deleted", "replaced", "unwritable"]


class JournalError(OSError):
    """The journal could not be opened, written or read; the message names the file and the cause."""


class JournalFaultError(JournalError):
    """The journal's file is no longer usable at its path; nothing was written.

    Attributes
    ----------
    fault : {"deleted", "replaced", "unwritable"}
        What :meth:`Journal.check` found; pass it to :meth:`Journal.recreate`.
    """

    def __init__(self, fault: JournalFault, message: str) -> None:
        self.fault = fault
        super().__init__(message)


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
    Thread safety: one connection writes and reads, under a lock, so any thread may call any method;
    a read waits at most :data:`READ_LOCK_TIMEOUT_S` for the lock (see "Locking mode" above).
    Durability: ``journal_mode=WAL`` + ``synchronous=FULL`` makes SQLite fsync the WAL at every
    commit (https://www.sqlite.org/pragma.html#pragma_synchronous); one append is one commit.
    """

    def __init__(self, config: JournalConfig) -> None:
        self.config = config
        self.path = Path(config.path)
        self._lock = threading.Lock()
        self._closed = True
        self._open()
        self.prune()

    def _open(self) -> None:
        """Open (or create) the file at :attr:`path`; sets the connection, identity, id and last_seq."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                with conn:
                    conn.executescript(_SCHEMA)
                    row = conn.execute("SELECT value FROM meta WHERE name = 'journal_id'").fetchone()
                    if row is None:
                        journal_id = uuid.uuid4()
                        conn.execute("INSERT INTO meta VALUES ('journal_id', ?)", (str(journal_id),))
                    else:
                        journal_id = uuid.UUID(row[0])
                row = conn.execute("SELECT value FROM counters WHERE name = ?", (_GLOBAL,)).fetchone()
                stat = os.stat(self.path)
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise JournalError(f"cannot open alarm journal {self.path}: {exc}") from exc
        self._conn = conn
        self._identity = (stat.st_dev, stat.st_ino)
        self._journal_id = journal_id
        self._last_seq = int(row[0]) if row else 0
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        # before WAL mode is entered: the WAL index then lives in heap memory, no -shm is mapped (no SIGBUS)
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise JournalError(f"alarm journal {self.path}: journal_mode is {mode!r}, expected 'wal'")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @property
    def journal_id(self) -> uuid.UUID:
        """The id of the journal file now open (changes when :meth:`recreate` opens a new one)."""
        return self._journal_id

    def check(self) -> JournalFault | None:
        """Whether the open file is still the one at :attr:`path` and writable.

        Returns
        -------
        fault : {"deleted", "replaced", "unwritable"} or None
            ``deleted``: nothing at the path (or its directory is gone); ``replaced``: another file at
            the path (other device or inode); ``unwritable``: the file is no longer writable for this
            process (permissions, immutable flag, read-only file system); None when all is well.
        """
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return "deleted"
        except OSError:
            return "unwritable"
        if (stat.st_dev, stat.st_ino) != self._identity:
            return "replaced"
        if not os.access(self.path, os.W_OK):
            return "unwritable"
        return None

    def _fault_error(self, fault: JournalFault) -> JournalFaultError:
        what = {"deleted": "was deleted (the open file is no longer at its path)",
                "replaced": "was replaced by another file (the path names another inode)",
                "unwritable": "is no longer writable"}[fault]
        return JournalFaultError(fault, f"alarm journal {self.path} {what}; nothing was written to it "
                                 "(recreate the journal)")

    def recreate(self, fault: JournalFault) -> str:
        """Put the faulty journal aside and open a new, empty one at :attr:`path` with a new id.

        Parameters
        ----------
        fault : {"deleted", "replaced", "unwritable"}
            What :meth:`check` (or a :class:`JournalFaultError`) found; it names the saved files.

        Returns
        -------
        detail : str
            One line for the ``daemon`` event and the log: the fault, where the old contents went, the
            old and the new ``journal_id``.

        Raises
        ------
        JournalError
            If no new journal can be opened at the path (the old one is closed either way; every
            append then fails with :class:`JournalError` until a later :meth:`recreate` succeeds).

        Notes
        -----
        Order matters: the old connection still holds the old file (also when it was unlinked). Its
        contents are copied out first (``VACUUM INTO <path>.<fault>-<stamp>``), then whatever is at
        the path (and its ``-wal``) is renamed aside, then the old connection is closed (its checkpoint
        goes to the old inode, and the WAL name it deletes no longer exists), and only then is the new
        file created: no write ever reaches a file that is not at the path.
        """
        with self._lock:
            old_id = self._journal_id
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            saved = Path(f"{self.path}.{fault}-{stamp}")
            notes: list[str] = []
            if not self._closed:
                try:
                    self._conn.execute("VACUUM INTO ?", (str(saved),))
                    notes.append(f"its contents (up to journal_seq {self._last_seq}) saved to {saved}")
                except sqlite3.Error as exc:
                    notes.append(f"its contents could not be saved to {saved}: {exc}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    # ".found.wal", not ".found-wal": SQLite must not pair a -wal found at the path (the old
                    # journal's, or the newcomer's: no telling) with the file found there when it is opened
                    dst = Path(f"{self.path}.{fault}-{stamp}.found{suffix.replace('-', '.')}")
                    try:
                        os.replace(src, dst)
                        notes.append(f"{src} moved to {dst}")
                    except OSError as exc:
                        notes.append(f"{src} could not be moved aside: {exc}")
            if not self._closed:
                self._closed = True
                try:
                    self._conn.close()
                except sqlite3.Error as exc:
                    notes.append(f"closing the old file failed: {exc}")
            if self.path.exists():
                raise JournalError(f"cannot recreate alarm journal {self.path} ({fault}): " + "; ".join(notes)
                                   + "; the journal stays closed (events are published live only) until the "
                                   "file can be moved aside")
            self._open()
        return (f"alarm journal {self.path} {fault}: " + "; ".join(notes) + f"; new journal opened "
                f"(journal_id {old_id} -> {self._journal_id}, journal_seq starts again at 1)")

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
            fault = self.check()
            if fault is not None:
                raise self._fault_error(fault)
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
                    done = event.model_copy(update={"journal_seq": seq, "bed_seq": bed_seq,
                                                    "journal_id": self._journal_id})
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
        with self._reading():
            try:
                rows = self._json_since(seq, limit)
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read alarm journal {self.path}: {exc}") from exc
        return rows

    def _json_since(self, seq: int, limit: int | None) -> list[str]:
        """The JSON of the events after ``seq``, oldest first (call under the lock; sqlite3.Error propagates)."""
        cursor = self._conn.execute("SELECT json FROM events WHERE journal_seq > ? ORDER BY journal_seq LIMIT ?",
                                    (int(seq), -1 if limit is None else int(limit)))
        return [row[0] for row in cursor.fetchall()]

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the lock for a read (the one connection reads too, see "Locking mode")."""
        if not self._lock.acquire(timeout=READ_LOCK_TIMEOUT_S):
            raise JournalError(f"alarm journal {self.path} is busy: an append has held it for over "
                               f"{READ_LOCK_TIMEOUT_S} s (disk hung?); try again")
        try:
            if self._closed:
                raise JournalError(f"alarm journal {self.path} is closed")
            yield
        finally:
            self._lock.release()

    def snapshot(self, seq: int, limit: int | None = None) -> tuple[uuid.UUID, int, int | None, list[str]]:
        """One consistent catch-up page: the journal id, last_seq, first_seq and :meth:`since_json`.

        Read under one lock, so the id and the events belong to the same journal file even when it is
        recreated meanwhile.

        Raises
        ------
        JournalError
            If the read fails or the journal is busy.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 (found {limit})")
        with self._reading():
            try:
                rows = self._json_since(seq, limit)
                first = self._conn.execute("SELECT MIN(journal_seq) FROM events").fetchone()[0]
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read alarm journal {self.path}: {exc}") from exc
            return self._journal_id, self._last_seq, None if first is None else int(first), rows

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
        with self._reading():
            try:
                row = self._conn.execute("SELECT MIN(journal_seq) FROM events").fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read alarm journal {self.path}: {exc}") from exc
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
            if self._closed:
                raise JournalError(f"alarm journal {self.path} is closed")
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
        """Close the connection (the exclusive lock is released: other processes may open the file)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
