"""The chat as a service: what one server process shares among the people using it.

One :class:`ChatService` per process (the Streamlit app keeps it with ``st.cache_resource``): the models and the
curated store (:class:`~assistant.chat.answer.Assistant`), the chat history (:class:`~assistant.chat.history.
ChatHistory`, each chat owned by a user id from :mod:`assistant.chat.users`) and the bounded request queue in front
of the generator (``Assistant.queue``, :class:`~assistant.chat.queue.RequestQueue`). Everything per person — their chats, their uploads
(:mod:`assistant.rag.sandbox`), the cancel event of their answer — is keyed by their user id, never shared.

The queue admits one answer at a time for the in-process generator (one CPU model decodes one answer at a time; a
second would only slow both, assistant/torch_thread.py), the server's parallel slots for the ``openai`` backend.
Compare mode (base and fine-tuned answers) holds one place.

What users leave behind is forgotten on time (:mod:`assistant.chat.retention`): at start, uploads from before
per-user stores are moved to their owner or deleted, and chats, uploads and user stores past ``retention_days`` are
purged, then again every hour on a :class:`~assistant.chat.retention.RetentionTimer` thread while the service runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistant.chat.answer import Assistant
from assistant.chat.history import ChatHistory
from assistant.chat.retention import RetentionTimer, migrate_flat_uploads, purge_expired
from assistant.config import Settings

logger = logging.getLogger(__name__)


@dataclass
class ChatService:
    """The shared parts of a running chat (see the module docstring)."""

    settings: Settings
    assistant: Assistant
    history: ChatHistory
    retention: RetentionTimer | None = None
    """The thread purging what is past ``retention_days`` (None when retention is off)."""

    @property
    def queue(self):
        """The bounded line answers wait in (:class:`~assistant.chat.queue.RequestQueue`)."""
        return self.assistant.queue

    @classmethod
    def from_settings(cls, settings: Settings, *, single_user: str | None = None) -> ChatService:
        """Load the models and the store, open the history, move or delete uploads from before per-user stores,
        purge what is past ``settings.retention_days`` and start the hourly purge.

        Args:
            settings: the server's settings.
            single_user: the one owner in single-user mode (:func:`~assistant.chat.users.local_user_id`): old
                flat uploads become theirs; None in team mode (they are deleted: nobody knows whose they were).

        Raises:
            LlamaMdError: a model or the store can't be loaded (the message says how to fix it).
        """
        assistant = Assistant.from_settings(settings, "auto")
        history = ChatHistory(settings.chats_dir)
        migrate_flat_uploads(settings, single_user)
        purge_expired(settings, history)
        retention = RetentionTimer(settings, history).start() if settings.retention_days else None
        return cls(settings, assistant, history, retention)

    def delete_user_data(self, user_id: str) -> tuple[int, int]:
        """ "Delete my data": every chat of ``user_id`` and every file they uploaded (with its store).

        Returns:
            ``(chats deleted, uploaded files deleted)``.
        """
        from assistant.chat.uploads import delete_uploads

        chats = self.history.delete_owner(user_id)
        files = delete_uploads(self.settings, user_id)
        logger.info("Deleted the data of one user: %d chats, %d uploads", chats, files)
        return chats, files
