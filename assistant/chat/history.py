"""Chat history kept across reloads: one SQLite file under ``$LLAMA_MD_HOME/chats``.

Tables: ``sessions(id, created)`` and ``messages(session_id, position, role, content, sources_json, created,
details_json)``. Each write is its own transaction, so a crash never loses earlier turns.

``details_json`` holds what an answer carries besides its sources (quoted ``evidence``, ``groundedness``,
``unsupported`` sentences, ``flags``). It was added after the first release: opening an older file adds the column
(``ALTER TABLE``, default ``'{}'``), so its rows read back exactly as before.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, created REAL NOT NULL);
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


class ChatHistory:
    """Sessions of ``{"role", "content", "sources", **details}`` messages in ``<chats_dir>/history.sqlite3``."""

    def __init__(self, chats_dir: Path) -> None:
        Path(chats_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(chats_dir) / "history.sqlite3"
        with self._connect() as db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
            if "details_json" not in columns:  # a file written before details were kept
                db.execute("ALTER TABLE messages ADD COLUMN details_json TEXT NOT NULL DEFAULT '{}'")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def new_session(self) -> str:
        """Create a session; returns its id (a uuid4 hex string)."""
        session_id = uuid.uuid4().hex
        with self._connect() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?)", (session_id, time.time()))
        return session_id

    def exists(self, session_id: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def add(
        self,
        session_id: str,
        role: str,
        content: str,
        sources: list[dict] | None = None,
        details: dict | None = None,
    ) -> None:
        """Append one message (role "user" or "assistant") with its sources (JSON-serialisable dicts) and details
        (a JSON-serialisable dict such as ``{"evidence": [...], "groundedness": 0.8}``; its keys must not be
        ``role``, ``content`` or ``sources``)."""
        details = details or {}
        assert not {"role", "content", "sources"} & set(details), "details would shadow a message field"
        with self._connect() as db:
            (position,) = db.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE session_id = ?", (session_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO messages (session_id, position, role, content, sources_json, created, details_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    position,
                    role,
                    content,
                    json.dumps(sources or []),
                    time.time(),
                    json.dumps(details),
                ),
            )

    def messages(self, session_id: str) -> list[dict]:
        """The session's messages, oldest first: ``{"role", "content", "sources", **details}`` (no details: the
        three keys alone)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT role, content, sources_json, details_json FROM messages WHERE session_id = ? "
                "ORDER BY position",
                (session_id,),
            ).fetchall()
        return [{"role": r, "content": c, "sources": json.loads(s), **json.loads(d)} for r, c, s, d in rows]
