"""Retrieval-augmented generation's library half: PDFs in, cited passages out.

``pdf`` (pypdf pages -> cleaned text) -> ``ingest`` (chunks -> embeddings -> the store, idempotent) -> ``store``
(the Chroma collection and its docstore) -> ``retrieve`` (dense or hybrid search, one passage per page).
"""
