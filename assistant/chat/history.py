"""Chat history kept across reloads, one owner per chat: one SQLite file under ``$LLAMA_MD_HOME/chats``.

Tables: ``sessions(id, created, owner, updated, title)`` and ``messages(session_id, position, role, content,
sources_json, created, details_json)``. ``owner`` is a user id from :mod:`assistant.chat.users`; every read and
write names the owner, and a chat of someone else reads exactly like one that does not exist
(:class:`ChatAccessError`), so session ids in ``?session=`` URLs cannot be probed.

The file holds medical questions, so:

* the folder is ``0700`` and the file (and SQLite's ``-wal``/``-shm`` side files, which SQLite creates with the
  database file's mode) ``0600`` whatever the umask;
* deletions overwrite the freed bytes (``PRAGMA secure_delete=ON``) and then checkpoint the write-ahead log, so a
  deleted chat cannot be read back from the file with a hex editor;
* :meth:`ChatHistory.purge` drops chats not touched for ``retention_days`` (``Settings.retention_days``).

Concurrency: the file is in WAL mode (readers never block the writer); each write is one ``BEGIN IMMEDIATE``
transaction that takes the write lock before it reads ``MAX(position)``, so two browser tabs (threads or processes)
appending to one chat never pick the same position. A busy writer is waited for up to ``BUSY_TIMEOUT_S``.

Older files open as they are: ``details_json`` (``'{}'``) and ``owner``/``updated``/``title`` are added with
``ALTER TABLE``; their chats get the single-user owner :func:`~assistant.chat.users.local_user_id`, so a person
running the app on their own machine keeps their chats.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assistant.chat.users import local_user_id
from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

DB_NAME = "history.sqlite3"
BUSY_TIMEOUT_S = 30.0
TITLE_CHARS = 60
SECONDS_PER_DAY = 86_400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL DEFAULT 0,
    title TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    sources_json TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    details_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, position)
);
"""
INDEXES = "CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions(owner, updated);"
# Columns added after the first release, with how an older row is filled in (after the ALTER TABLE).
ADDED_COLUMNS = {
    ("messages", "details_json"): ("TEXT NOT NULL DEFAULT '{}'", None),
    ("sessions", "owner"): ("TEXT NOT NULL DEFAULT ''", "UPDATE sessions SET owner = ? WHERE owner = ''"),
    ("sessions", "updated"): (
        "REAL NOT NULL DEFAULT 0",
        "UPDATE sessions SET updated = MAX(created, COALESCE("
        "(SELECT MAX(m.created) FROM messages m WHERE m.session_id = sessions.id), 0))",
    ),
    ("sessions", "title"): ("TEXT NOT NULL DEFAULT ''", None),  # filled by _backfill_titles
}


class ChatAccessError(LlamaMdError, PermissionError):
    """The chat does not exist or belongs to someone else (one message for both, so ids cannot be probed)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"Chat {session_id[:40]!r} was not found: it does not exist, was deleted, or belongs to another user. "
            "Start a new chat (the 'New chat' button, or open the app without '?session=' in the address)."
        )


@dataclass(frozen=True)
class ChatSummary:
    """One chat as the sidebar lists it.

    Attributes:
        id: the session id (uuid4 hex), the ``?session=`` value.
        title: the first user question, whitespace collapsed, cut to ``TITLE_CHARS`` characters ("" until asked).
        created: when the chat was started (Unix time, seconds).
        updated: when a message was last added (Unix time, seconds; ``created`` for an empty chat).
        n_messages: how many messages (questions and answers) it holds.
    """

    id: str
    title: str
    created: float
    updated: float
    n_messages: int


def make_title(question: str) -> str:
    """A chat's title from its first question: whitespace collapsed, at most ``TITLE_CHARS`` characters ("…")."""
    text = " ".join(question.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


class ChatHistory:
    """Owned sessions of ``{"role", "content", "sources", **details}`` messages in ``<chats_dir>/history.sqlite3``.

    Args:
        chats_dir: the folder for the database (``Settings.chats_dir``); created (parents too) if missing and set to
            mode ``0700``; the file is created ``0600`` (an existing one is set to ``0600``).

    Raises:
        OSError: the folder or file cannot be created or its mode set (e.g. owned by another account).
        sqlite3.DatabaseError: the file is not a SQLite database.
    """

    def __init__(self, chats_dir: Path) -> None:
        folder = Path(chats_dir)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask; an existing folder may be wider
        self.path = folder / DB_NAME
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # exists before SQLite opens it
        for path in (self.path, *self._side_files()):
            if path.exists():
                os.chmod(path, 0o600)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file; readers no longer block the writer
            db.executescript(SCHEMA)
            db.execute("BEGIN IMMEDIATE")  # two processes opening an old file migrate it once
            self._migrate(db)
            db.execute(INDEXES)
            db.execute("COMMIT")

    def _side_files(self) -> tuple[Path, Path]:
        return self.path.with_name(DB_NAME + "-wal"), self.path.with_name(DB_NAME + "-shm")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit), closed on exit."""
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            # per connection: freed bytes are zeroed, not left in the file
            db.execute("PRAGMA secure_delete=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from its first read (``BEGIN IMMEDIATE``)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self, db: sqlite3.Connection) -> None:
        for (table, column), (decl, fill) in ADDED_COLUMNS.items():
            if column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                continue
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            if fill:
                db.execute(fill, (local_user_id(),) if "?" in fill else ())
            if column == "title":
                self._backfill_titles(db)
            logger.info("Chat history %s: added column %s.%s", self.path, table, column)

    @staticmethod
    def _backfill_titles(db: sqlite3.Connection) -> None:
        rows = db.execute(
            "SELECT s.id, (SELECT m.content FROM messages m WHERE m.session_id = s.id AND m.role = 'user' "
            "ORDER BY m.position LIMIT 1) FROM sessions s"
        ).fetchall()
        db.executemany(
            "UPDATE sessions SET title = ? WHERE id = ?", [(make_title(q), s) for s, q in rows if q]
        )

    @staticmethod
    def _require(db: sqlite3.Connection, session_id: str, owner: str) -> None:
        row = db.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None or row[0] != owner or not owner:
            raise ChatAccessError(session_id)

    def _checkpoint(self) -> None:
        """Fold the write-ahead log into the file and empty it, so deleted rows leave no copy in the ``-wal``."""
        with self._connect() as db:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        # busy: a reader held an old snapshot; the next checkpoint (SQLite's automatic one too) finishes it
        if busy:
            logger.info("Chat history %s: checkpoint deferred by an open reader", self.path)

    def new_session(self, owner: str) -> str:
        """Create an empty chat owned by ``owner`` (a user id from :mod:`assistant.chat.users`).

        Returns:
            The session id (32 hex digits, uuid4).

        Raises:
            ValueError: ``owner`` is empty.
        """
        if not owner:
            raise ValueError("a chat needs an owner: pass local_user_id() or oidc_user_id(iss, sub)")
        session_id = uuid.uuid4().hex
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO sessions (id, created, owner, updated, title) VALUES (?, ?, ?, ?, '')",
                (session_id, now, owner, now),
            )
        return session_id

    def sessions(self, owner: str) -> list[ChatSummary]:
        """``owner``'s chats (empty ones too), most recently updated first; another owner's are never listed."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT s.id, s.title, s.created, s.updated, "
                "(SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) "
                "FROM sessions s WHERE s.owner = ? ORDER BY s.updated DESC, s.created DESC, s.rowid DESC",
                (owner,),
            ).fetchall()
        return [ChatSummary(*row) for row in rows]

    def owner_of(self, session_id: str) -> str | None:
        """The chat's owner id, or None if there is no such chat."""
        with self._connect() as db:
            row = db.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row[0] if row else None

    def exists(self, session_id: str, owner: str | None = None) -> bool:
        """Whether the chat exists (``owner`` None) or exists and belongs to ``owner``."""
        found = self.owner_of(session_id)
        return found is not None and (owner is None or found == owner)

    def add(
        self,
        session_id: str,
        role: str,
        content: str,
        sources: list[dict] | None = None,
        details: dict | None = None,
        *,
        owner: str,
    ) -> int:
        """Append one message to ``owner``'s chat; the first user message becomes the chat's title.

        Args:
            session_id: the chat.
            role: "user" or "assistant".
            content: the message text.
            sources: JSON-serialisable dicts (``{"file", "page", ...}``) the answer cites.
            details: JSON-serialisable extras such as ``{"evidence": [...], "groundedness": 0.8}``; its keys must
                not be ``role``, ``content`` or ``sources``.
            owner: who is writing; must own the chat.

        Returns:
            The message's position in the chat (0 for the first); concurrent writers get distinct positions.

        Raises:
            ChatAccessError: the chat does not exist or belongs to someone else (nothing is written).
        """
        details = details or {}
        assert not {"role", "content", "sources"} & set(details), "details would shadow a message field"
        now = time.time()
        with self._write() as db:
            self._require(db, session_id, owner)
            (position,) = db.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE session_id = ?", (session_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO messages (session_id, position, role, content, sources_json, created, details_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, position, role, content, json.dumps(sources or []), now, json.dumps(details)),
            )
            db.execute(
                "UPDATE sessions SET updated = ?, "
                "title = CASE WHEN title = '' AND ? = 'user' THEN ? ELSE title END WHERE id = ?",
                (now, role, make_title(content), session_id),
            )
        return position

    def messages(self, session_id: str, *, owner: str) -> list[dict]:
        """``owner``'s chat, oldest first: ``{"role", "content", "sources", **details}`` (no details: three keys).

        Raises:
            ChatAccessError: the chat does not exist or belongs to someone else.
        """
        with self._connect() as db:
            db.execute("BEGIN")  # the owner check and the rows come from one snapshot
            self._require(db, session_id, owner)
            rows = db.execute(
                "SELECT role, content, sources_json, details_json FROM messages WHERE session_id = ? "
                "ORDER BY position",
                (session_id,),
            ).fetchall()
            db.execute("COMMIT")
        return [{"role": r, "content": c, "sources": json.loads(s), **json.loads(d)} for r, c, s, d in rows]

    def _delete_where(self, condition: str, params: tuple) -> int:
        """Delete the chats matching ``condition`` (on ``sessions``) and their messages; returns how many chats."""
        with self._write() as db:
            db.execute(
                f"DELETE FROM messages WHERE session_id IN (SELECT id FROM sessions WHERE {condition})",
                params,
            )
            deleted = db.execute(f"DELETE FROM sessions WHERE {condition}", params).rowcount
        if deleted:
            self._checkpoint()
        return deleted

    def delete(self, session_id: str, *, owner: str) -> bool:
        """Delete ``owner``'s chat and its messages (their bytes are overwritten in the file).

        Returns:
            True if it was deleted; False if there was no such chat of ``owner``'s (missing, already deleted, or
            someone else's: that chat is left untouched, and the answer does not say which).
        """
        return bool(owner) and self._delete_where("id = ? AND owner = ?", (session_id, owner)) == 1

    def delete_owner(self, owner: str) -> int:
        """Delete every chat ``owner`` has, with its messages (the UI's "delete my data").

        Returns:
            How many chats were deleted (0 for an empty ``owner``).
        """
        return self._delete_where("owner = ?", (owner,)) if owner else 0

    def purge(self, older_than_days: float, *, now: float | None = None) -> int:
        """Delete every chat (any owner) not updated for ``older_than_days`` days (``Settings.retention_days``).

        Args:
            older_than_days: the retention, in days; 0 keeps chats forever (nothing is purged).
            now: the current Unix time in seconds (default: ``time.time()``).

        Returns:
            How many chats were deleted.

        Raises:
            ValueError: ``older_than_days`` is negative.
        """
        if older_than_days < 0:
            raise ValueError(f"older_than_days must be >= 0 (0 = keep forever), got {older_than_days}")
        if older_than_days == 0:
            return 0
        cutoff = (time.time() if now is None else now) - older_than_days * SECONDS_PER_DAY
        deleted = self._delete_where("updated < ?", (cutoff,))
        if deleted:
            logger.info(
                "Chat history %s: purged %d chats older than %g days", self.path, deleted, older_than_days
            )
        return deleted
