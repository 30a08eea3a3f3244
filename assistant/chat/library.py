"""What one user retrieves from: the curated library plus that user's own uploads (issue #15).

The curated store (``<home>/store``) is shared and read-only from the chat; each user's uploads live in their own
store (:mod:`assistant.chat.uploads`). :func:`retrieve_for_user` asks both and keeps the best ``top_k`` hits by
cosine similarity (both stores hold vectors of the same embedding model, so their scores compare). Hits from the
user's store are marked ``uploaded=True``: the UI labels them "your document" and they carry the file name as
title, never a manifest's.

Per-user retrievers share the curated retriever's embedding model (one MiniLM per process) and are cached for the
``USER_CACHE_SIZE`` most recent users; each follows its store's generation counter, so a finished upload (written
by the sandboxed child) is seen on the next question without reloading.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict

from assistant.config import Settings

logger = logging.getLogger(__name__)

USER_CACHE_SIZE = 16  # users whose retriever stays open (a Chroma client + BM25 index each, a few MB)

_RETRIEVERS: OrderedDict[str, object] = OrderedDict()  # user store dir -> Retriever
_LOCK = threading.Lock()


def user_retriever(store: Settings, embed_model, mode: str | None = None, reranker=None):
    """The cached Retriever over ``store`` (a user's store settings), or None when the user has uploaded nothing.

    Args:
        store: :func:`assistant.chat.uploads.user_store_settings` of the user.
        embed_model: the already loaded llama-index embedding (the curated retriever's), shared, not reloaded.
        mode: retrieval mode (default: the retriever's default).
        reranker: the curated retriever's re-ranker (shared), so both lists are ordered by the same model.
    """
    from assistant.rag.retrieve import DEFAULT_MODE, Retriever
    from assistant.rag.store import StoreError, open_client, open_collection

    key = str(store.store_dir.resolve())
    with _LOCK:
        if key in _RETRIEVERS:
            _RETRIEVERS.move_to_end(key)
            return _RETRIEVERS[key]
    if not store.store_dir.is_dir():
        return None
    try:  # fresh: the store was written by the sandboxed child, maybe deleted and made again
        collection = open_collection(store, client=open_client(store, fresh=True))
    except StoreError:
        return None
    retriever = Retriever(store, collection, embed_model, mode or DEFAULT_MODE, reranker=reranker)
    with _LOCK:
        _RETRIEVERS[key] = retriever
        while len(_RETRIEVERS) > USER_CACHE_SIZE:
            _RETRIEVERS.popitem(last=False)
    return retriever


def forget_user(store: Settings) -> None:
    """Drop the cached retriever of ``store`` (before its store is deleted)."""
    with _LOCK:
        _RETRIEVERS.pop(str(store.store_dir.resolve()), None)


def merge_hits(curated: list, own: list, top_k: int) -> list:
    """The ``top_k`` best of both lists, best first; ``own`` hits are marked ``uploaded=True``. Hits are compared
    by the re-ranker's probability when every hit has one (both lists were re-ranked), else by cosine; the sort is
    stable, so one list alone keeps its order."""
    own = [dataclasses.replace(h, uploaded=True) for h in own]
    hits = [*curated, *own]
    reranked = all(h.rerank is not None for h in hits)
    return sorted(hits, key=lambda h: -(h.rerank if reranked else h.score))[:top_k]


def retrieve_for_user(question: str, top_k: int, settings: Settings, user_id: str, curated=None) -> list:
    """Hits for ``question`` from the curated retriever (when given) and ``user_id``'s own store, merged.

    Args:
        question: the user's question.
        top_k: hits to return.
        settings: the server's settings (``home`` holds the curated store and the users' stores).
        user_id: :mod:`assistant.chat.users` id of who asks.
        curated: the curated Retriever, or None without a curated store.

    Returns:
        Up to ``top_k`` Hits, best first (merge_hits).
    """
    from assistant.chat.uploads import user_store_settings
    from assistant.models import load_index_embedder
    from assistant.rag.store import StoreError

    hits = curated.retrieve(question, top_k) if curated is not None else []
    store = user_store_settings(settings, user_id)
    embed = curated.embed_model if curated is not None else load_index_embedder(None, settings)
    own_retriever = user_retriever(
        store,
        embed,
        curated.mode if curated is not None else None,
        curated.reranker if curated is not None else None,
    )
    own = []
    if own_retriever is not None:
        try:
            own = own_retriever.retrieve(question, top_k)
        except StoreError as exc:  # deleted meanwhile ("delete my data")
            logger.info("User store gone: %s", exc)
            forget_user(store)
    return merge_hits(hits, own, top_k)
