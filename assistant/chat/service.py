"""The chat as a service: what one server process shares among the people using it.

One :class:`ChatService` per process (the Streamlit app keeps it with ``st.cache_resource``): the models and the
curated store (:class:`~assistant.chat.answer.Assistant`), the chat history (:class:`~assistant.chat.history.
ChatHistory`, each chat owned by a user id from :mod:`assistant.chat.users`) and the bounded request queue in front
of the generator (``Assistant.queue``, :class:`~assistant.chat.queue.RequestQueue`). Everything per person — their chats, their uploads
(:mod:`assistant.rag.sandbox`), the cancel event of their answer — is keyed by their user id, never shared.

The queue admits one answer at a time for the in-process generator (one CPU model decodes one answer at a time; a
second would only slow both, assistant/torch_thread.py), the server's parallel slots for the ``openai`` backend.
Compare mode (base and fine-tuned answers) holds one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistant.chat.answer import Assistant
from assistant.chat.history import ChatHistory
from assistant.config import Settings

logger = logging.getLogger(__name__)


@dataclass
class ChatService:
    """The shared parts of a running chat (see the module docstring)."""

    settings: Settings
    assistant: Assistant
    history: ChatHistory

    @property
    def queue(self):
        """The bounded line answers wait in (:class:`~assistant.chat.queue.RequestQueue`)."""
        return self.assistant.queue

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatService:
        """Load the models and the store, open the history and purge chats past ``settings.retention_days``.

        Raises:
            LlamaMdError: a model or the store can't be loaded (the message says how to fix it).
        """
        assistant = Assistant.from_settings(settings, "auto")
        history = ChatHistory(settings.chats_dir)
        if settings.retention_days:
            purged = history.purge(settings.retention_days)
            if purged:
                logger.info("Deleted %d chats older than %d days", purged, settings.retention_days)
        return cls(settings, assistant, history)

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
