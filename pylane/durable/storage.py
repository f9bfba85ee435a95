"""Durable storage of pending commands and dead letters.

``Storage`` is the protocol (the original's seven methods); ``LocalStorage``
is the default backend, SQLite in WAL mode. A command is saved before its
submit returns and removed when it ends, so whatever a crashed process left
behind is exactly the work that had not finished; the queue re-runs it on
the next start (at-least-once).

Durability: commits in WAL mode with ``synchronous=NORMAL`` survive a killed
process (the data is in the OS page cache and the WAL); pass
``sync="full"`` to survive power loss too, at the cost of an fsync per
commit.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Protocol, Union, runtime_checkable

from ..errors import InvalidPayloadError, StorageError

logger = logging.getLogger("pylane.storage")

DEFAULT_FILE_NAME = "lane.sqlite3"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class StoredCommand:
    id: str
    command_type: str
    lane_id: str
    payload: Any
    retry_count: int = 0
    created_at: datetime = field(default_factory=_now)
    last_attempt_at: Optional[datetime] = None
    # How to rebuild it: "json" (SDK) or a Command class as "module:qualname".
    kind: str = ""


@dataclass
class StoredDeadLetter:
    command_id: str
    command_type: str
    lane_id: str
    error: str
    attempts: int
    failed_at: datetime = field(default_factory=_now)


@dataclass
class LoadReport:
    """What the last ``load_commands`` / ``load_dead_letters`` could not
    read, for the queue to report."""

    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (row id, reason)


@runtime_checkable
class Storage(Protocol):
    def save_command(self, command: StoredCommand) -> None: ...
    def load_commands(self) -> list[StoredCommand]: ...
    def remove_command(self, command_id: str) -> None: ...
    def save_dead_letter(self, letter: StoredDeadLetter) -> None: ...
    def load_dead_letters(self) -> list[StoredDeadLetter]: ...
    def clear_dead_letters(self) -> None: ...
    def clear_all(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    command_type TEXT NOT NULL,
    lane_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    retry_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_attempt_at TEXT,
    kind TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL,
    command_type TEXT NOT NULL,
    lane_id TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at TEXT NOT NULL
);
"""


def _iso(moment: Optional[datetime]) -> Optional[str]:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _parse_time(text: Optional[str]) -> Optional[datetime]:
    return None if text is None else datetime.fromisoformat(text)


class LocalStorage:
    """SQLite storage in `path`: a directory (the file ``lane.sqlite3`` is
    created in it, as the original took a directory) or a ``.db`` /
    ``.sqlite`` / ``.sqlite3`` file path."""

    def __init__(self, path: Union[str, os.PathLike[str]], sync: str = "normal", *,
                 readonly: bool = False) -> None:
        """`readonly` opens it for inspection while its owner runs: no
        ownership is taken and every write raises StorageError."""
        if sync not in ("normal", "full"):
            raise StorageError(f"sync must be 'normal' or 'full', got {sync!r}")
        target = Path(path)
        if target.suffix not in (".db", ".sqlite", ".sqlite3"):
            target = target / DEFAULT_FILE_NAME
        self.path = target
        self.readonly = readonly
        self.last_load = LoadReport()
        self._lock = threading.Lock()
        self._seq = 0
        self._owner: Optional[_Ownership] = None
        if readonly:
            try:
                self._db = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True,
                                           check_same_thread=False, isolation_level=None)
                self._db.execute("SELECT 1 FROM commands LIMIT 1")
            except sqlite3.Error as error:
                raise StorageError(f"cannot open storage at {target} to read: {error}") from error
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot open storage at {target}: {error}") from error
        # One owner at a time: two live processes recovering each other's
        # commands would run them twice.
        self._owner = _Ownership(target)
        try:
            # One connection shared by every thread, serialised by our lock:
            # SQLite serialises writers anyway, and one connection keeps the
            # per-commit cost down.
            self._db = sqlite3.connect(
                str(target), check_same_thread=False, isolation_level=None, timeout=5.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync.upper()}")
            self._db.executescript(_SCHEMA)
            # Takes the write lock once, so that a database another process
            # holds locked fails here, naming the path, not at the first submit.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("COMMIT")
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM commands").fetchone()
            self._seq = int(row[0])
        except (sqlite3.Error, OSError) as error:
            self._owner.release()
            raise StorageError(f"cannot open storage at {target}: {error}") from error

    def _writable(self) -> None:
        if self.readonly:
            raise StorageError(f"storage at {self.path} was opened read-only")

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._writable()
        try:
            with self._lock:
                self._db.execute(sql, params)
        except sqlite3.Error as error:
            raise StorageError(f"storage write failed ({self.path}): {error}") from error

    # ---- commands -------------------------------------------------------------

    def save_command(self, command: StoredCommand) -> None:
        """Inserts or replaces by id. The payload is serialised first, so an
        unserialisable payload writes nothing."""
        self._writable()
        payload = encode_payload(command.payload)
        try:
            with self._lock:
                self._seq += 1
                self._db.execute(
                    "INSERT INTO commands (id, command_type, lane_id, payload, retry_count,"
                    " created_at, last_attempt_at, kind, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET payload=excluded.payload,"
                    " retry_count=excluded.retry_count, last_attempt_at=excluded.last_attempt_at",
                    (command.id, command.command_type, command.lane_id, payload,
                     command.retry_count, _iso(command.created_at),
                     _iso(command.last_attempt_at), command.kind, self._seq),
                )
        except sqlite3.Error as error:
            raise StorageError(f"storage write failed ({self.path}): {error}") from error

    def load_commands(self) -> list[StoredCommand]:
        """Every stored command, oldest first. Rows that cannot be read are
        skipped, logged and listed in ``last_load.corrupt``."""
        report = LoadReport()
        commands = []
        with self._lock:
            rows = self._db.execute(
                "SELECT id, command_type, lane_id, payload, retry_count, created_at,"
                " last_attempt_at, kind FROM commands ORDER BY seq"
            ).fetchall()
        for row in rows:
            try:
                commands.append(StoredCommand(
                    id=str(row[0]), command_type=str(row[1]), lane_id=str(row[2]),
                    payload=json.loads(row[3]), retry_count=int(row[4]),
                    created_at=_parse_time(row[5]) or _now(),
                    last_attempt_at=_parse_time(row[6]), kind=str(row[7] or ""),
                ))
            except (TypeError, ValueError, RecursionError) as error:
                report.corrupt.append((str(row[0]), f"{type(error).__name__}: {error}"))
                logger.error("stored command %r is unreadable and was skipped: %s", row[0], error)
        self.last_load = report
        return commands

    def remove_command(self, command_id: str) -> None:
        self._write("DELETE FROM commands WHERE id = ?", (command_id,))

    def count_commands(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM commands").fetchone()[0])

    # ---- dead letters ---------------------------------------------------------

    def save_dead_letter(self, letter: StoredDeadLetter) -> None:
        self._write(_INSERT_DEAD_LETTER, _dead_letter_row(letter))

    def load_dead_letters(self) -> list[StoredDeadLetter]:
        """Every stored dead letter, oldest first. Rows that cannot be read
        are skipped, logged and listed in ``last_load.corrupt``."""
        report = LoadReport()
        letters = []
        with self._lock:
            rows = self._db.execute(
                "SELECT command_id, command_type, lane_id, error, attempts, failed_at"
                " FROM dead_letters ORDER BY seq"
            ).fetchall()
        for r in rows:
            try:
                letters.append(StoredDeadLetter(str(r[0]), str(r[1]), str(r[2]), str(r[3]),
                                                int(r[4]), _parse_time(r[5]) or _now()))
            except (TypeError, ValueError) as error:
                report.corrupt.append((str(r[0]), f"{type(error).__name__}: {error}"))
                logger.error("stored dead letter %r is unreadable and was skipped: %s",
                             r[0], error)
        self.last_load = report
        return letters

    def remove_dead_letter(self, command_id: str) -> None:
        """Removes the oldest stored dead letter of that command (a DLQ pop
        or eviction)."""
        self._write(
            "DELETE FROM dead_letters WHERE seq ="
            " (SELECT MIN(seq) FROM dead_letters WHERE command_id = ?)",
            (command_id,),
        )

    def move_to_dead_letters(self, command_id: str, letter: StoredDeadLetter) -> None:
        """Removes a stored command and saves its dead letter in one
        transaction: a crash leaves it in one table or the other."""
        self._writable()
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("DELETE FROM commands WHERE id = ?", (command_id,))
                    self._db.execute(_INSERT_DEAD_LETTER, _dead_letter_row(letter))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise StorageError(f"storage write failed ({self.path}): {error}") from error

    def clear_dead_letters(self) -> None:
        self._write("DELETE FROM dead_letters")

    def clear_all(self) -> None:
        self._write("DELETE FROM commands")
        self._write("DELETE FROM dead_letters")

    def close(self) -> None:
        """Closes the database and gives up ownership (another process, or
        another LocalStorage here, may open it then)."""
        with self._lock:
            self._db.close()
            if self._owner is not None:
                self._owner.release()


class _Ownership:
    """An exclusive OS lock (``flock``) on ``<database>.lock``, held for the
    life of the storage. The kernel drops it when the process dies, however
    it dies, so recovery after a SIGKILL still opens the storage; a second
    live opener — another process, or a second LocalStorage in this one —
    fails with a StorageError naming the path and the holder."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StorageError(f"cannot open the lock file {self.path}: {error}") from error
        self._fd: Optional[int] = fd  # None once released
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read_holder(fd)
            self.release()
            raise StorageError(
                f"storage at {database} is in use by {holder} (lock file {self.path}): one "
                f"live process may own a LocalStorage; close it or use another path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 200).decode(errors="replace").strip()
        except OSError:
            text = ""
        return f"process {text}" if text else "another process"

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the flock


_INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (command_id, command_type, lane_id, error, attempts, failed_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _dead_letter_row(letter: StoredDeadLetter) -> tuple[Any, ...]:
    return (letter.command_id, letter.command_type, letter.lane_id, letter.error,
            letter.attempts, _iso(letter.failed_at))


def move_to_dead_letters(storage: Storage, command_id: str, letter: StoredDeadLetter) -> None:
    """A stored command becomes a dead letter. Backends with their own
    atomic ``move_to_dead_letters`` (LocalStorage) do it in one step; for the
    others the dead letter is saved before the command is removed, so a
    crash in between leaves it in both (it runs again: at-least-once), never
    in neither."""
    move = getattr(storage, "move_to_dead_letters", None)
    if move is not None:
        move(command_id, letter)
        return
    storage.save_dead_letter(letter)
    storage.remove_command(command_id)


def encode_payload(payload: Any) -> str:
    """JSON text of a payload, or an InvalidPayloadError naming what is wrong."""
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidPayloadError(f"payload cannot be stored as JSON: {error}") from error
    except RecursionError:
        raise InvalidPayloadError("payload is nested too deeply to store as JSON") from None
