"""The answer path shared by the UI, the CLI and the evaluation.

``answer`` (:class:`~assistant.chat.answer.Assistant`): ``safety`` screen -> retrieve (:mod:`assistant.rag`) ->
``prompts`` (compose within the token budget) -> ``generation`` (stream the base model + adapter) -> cite.
Around it: ``history`` (chats kept in SQLite) and ``uploads`` (PDFs added from the UI).
"""
