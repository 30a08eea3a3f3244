"""Re-embed a store with another embedding model, keeping every chunk, its id and its metadata.

    llama-md retriever reembed                                   # with settings.embedding_model
    LLAMA_MD_EMBEDDING_MODEL=llama-md/minilm-medical llama-md retriever reembed

The chunks are read from the current collection (text and metadata as ingest wrote them, specialty included),
embedded with the settings' model into ``<collection>__rebuild``, and swapped in like an ingest ``--rebuild``
(:func:`assistant.rag.store.swap_in`): until the swap nothing of the old store changes, the generation counter
rises so running chats reopen it, and the collection's metadata records the new model. It holds the store's writer
lock (:mod:`assistant.rag.lock`) throughout. No PDF is read again, so chunk ids, pages and citations are unchanged.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from assistant.config import Settings

logger = logging.getLogger(__name__)

BATCH = 256  # chunks read, embedded and written per step


@dataclass
class ReembedReport:
    """What a re-embedding did: chunks copied, the models before and after, seconds."""

    chunks: int
    old_model: str
    new_model: str
    seconds: float


def reembed_store(
    settings: Settings,
    *,
    source: str | None = None,
    chroma_url: str | None = None,
    show_progress: bool = True,
) -> ReembedReport:
    """Re-embed ``settings.collection`` with ``settings.embedding_model`` (module docstring).

    Args:
        settings: the collection to write (and, by default, to read), the embedding model, the store.
        source: read the chunks from this collection of the same store instead (the store under
            ``settings.collection`` is then built or replaced from it; ``source`` is left as it was).

    Returns:
        A :class:`ReembedReport`.

    Raises:
        StoreError: there is no collection to re-embed (names the ingest command).
        StoreLockedError: never; the call waits for another writer to finish.
        ModelUnavailableError: the embedding model can't be loaded (a trained alias names its build command).
    """
    from chromadb.errors import NotFoundError
    from tqdm import tqdm

    from assistant.models import embedder_identity, load_embedder
    from assistant.rag import store as st
    from assistant.rag.lock import store_lock

    started = time.perf_counter()
    embedder = load_embedder(None, settings)
    with store_lock(settings, chroma_url):
        client = st.open_client(settings, chroma_url)
        try:
            old = client.get_collection(source or settings.collection, embedding_function=None)
        except (NotFoundError, ValueError) as exc:
            raise st.StoreError(
                f"No collection {source or settings.collection!r} to re-embed in {chroma_url or settings.store_dir}. "
                f"Fix: build it with `{st.ingest_command(settings)}` (it is embedded with the new model directly)."
            ) from exc
        old_model = str((old.metadata or {}).get("embedding_model", "unknown"))
        aside = replace(settings, collection=settings.collection + st.REBUILD_SUFFIX)
        st.drop_collection(aside, chroma_url=chroma_url, client=client)
        dim = int(embedder.get_sentence_embedding_dimension())
        built = client.create_collection(
            aside.collection,
            metadata={**st.store_metadata(settings, dim), st.GENERATION: st.store_generation(old)},
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
        total = old.count()
        with tqdm(total=total, desc="re-embedding chunks", unit="chunk", disable=not show_progress) as bar:
            for offset in range(0, total, BATCH):
                page = old.get(offset=offset, limit=BATCH, include=["documents", "metadatas"])
                vectors = embedder.encode(
                    [d or "" for d in page["documents"]], normalize_embeddings=True, batch_size=32,
                    show_progress_bar=False, convert_to_numpy=True,
                )  # fmt: skip
                built.add(
                    ids=page["ids"],
                    documents=page["documents"],
                    metadatas=page["metadatas"],
                    embeddings=vectors.tolist(),
                )
                bar.update(len(page["ids"]))
        if built.count() != total:
            st.drop_collection(aside, chroma_url=chroma_url, client=client)
            raise st.StoreError(
                f"Re-embedding copied {built.count()} of {total} chunks, so the old store was kept as it was. "
                "Fix: run `llama-md retriever reembed` again."
            )
        with tempfile.TemporaryDirectory() as tmp:  # swap_in moves a docstore into place: give it a copy
            docstore = Path(tmp) / "docstore.json"
            current = st.docstore_path(
                replace(settings, collection=source or settings.collection), chroma_url
            )
            if current.is_file():
                shutil.copy2(current, docstore)
            else:
                st.save_docstore(st.load_docstore(current), docstore)
            st.swap_in(built, settings, docstore, chroma_url=chroma_url, client=client)
    seconds = time.perf_counter() - started
    logger.info(
        "re-embedded %d chunks: %s -> %s in %.0f s", total, old_model, embedder_identity(settings), seconds
    )
    return ReembedReport(total, old_model, embedder_identity(settings), round(seconds, 1))
