"""The Chroma collection that holds the chunks, and the docstore that makes re-ingesting idempotent.

Embedded by default: a ``chromadb.PersistentClient`` under ``<home>/store``. With ``chroma_url``
(``http://HOST:PORT``, a server started with ``chroma run --path DIR --port PORT``) an ``HttpClient`` is used.

The collection's metadata records what its vectors mean: ``embedding_model``, ``embedding_dim``, ``chunk_size``
and ``chunk_overlap`` (tokens of the embedding model). Opening it with another embedding model is refused with an
error naming both models and ``--rebuild`` (vectors of two models in one index give meaningless neighbours: the
failure reported in chroma-core/chroma#1905 and run-llama/llama_index#10166). Distances are cosine
(``hnsw.space = cosine``), so a hit's score ``1 - distance`` is the cosine similarity.

It also holds ``generation``, a counter every ingest that changed the store raises (a ``--rebuild`` swaps in a new
collection with the next number), so a reader in another process can tell that its open client is stale and reopen
(the embedded client caches its index per process: chroma-core/chroma#3792). Writers hold the lock of
:mod:`assistant.rag.lock`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

from assistant.config import Settings
from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

META_KEYS = ("embedding_model", "embedding_dim", "chunk_size", "chunk_overlap")
GENERATION = "generation"
REBUILD_SUFFIX = "__rebuild"  # a --rebuild builds into <collection>__rebuild, then swaps it in
_CLIENTS = threading.Lock()  # held while an embedded client is made (and its store's cache entry dropped)


class StoreError(LlamaMdError, RuntimeError):
    """The store or collection is missing, unreachable, or was built with another embedding model / chunking."""


def ingest_command(settings: Settings) -> str:
    """The command that builds the store for these settings (used in error messages)."""
    if settings.specialty:
        return f"python -m ingest --specialty {settings.specialty}"
    return "python -m ingest PATH_TO_PDFS"


def open_client(settings: Settings, chroma_url: str | None = None, *, fresh: bool = False):
    """A Chroma client: ``HttpClient`` for ``chroma_url``, else ``PersistentClient(<home>/store)``.

    ``fresh=True`` drops this store's entry from chromadb's per-process cache of embedded clients first, so the
    new client reads what other processes wrote since this one opened the store. Only this store's entry goes:
    chromadb's ``SharedSystemClient.clear_system_cache()`` would empty the cache of every store in the process, and
    a client another thread is opening at that moment (another user's store, the curated one) then fails with a
    ``KeyError`` on its own path. Clients opened before keep working on their own.

    Raises:
        StoreError: ``chroma_url`` is malformed or the server does not answer its heartbeat.
    """
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        url = urlparse(chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname or not url.port:
            raise StoreError(
                f"--chroma-url must look like http://HOST:PORT, got {chroma_url!r}. "
                "Start a server with `chroma run --path DIR --port PORT`."
            )
        try:
            client = chromadb.HttpClient(
                host=url.hostname, port=url.port, ssl=url.scheme == "https", settings=chroma_settings
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreError(
                f"No Chroma server answers at {chroma_url} ({type(exc).__name__}: {exc}). "
                "Start one with `chroma run --path DIR --port PORT`, or drop --chroma-url to use the embedded store."
            ) from exc
        return client
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    from chromadb.api.shared_system_client import SharedSystemClient

    path = str(settings.store_dir)
    with _CLIENTS:  # a cache entry is never dropped while another thread builds a client on it
        if fresh:
            SharedSystemClient._identifier_to_system.pop(path, None)
            SharedSystemClient._identifier_to_refcount.pop(path, None)
        return chromadb.PersistentClient(path=path, settings=chroma_settings)


def store_metadata(settings: Settings, embedding_dim: int) -> dict:
    """The collection metadata recorded at creation (see the module docstring)."""
    from assistant.models import embedder_identity

    return {
        "embedding_model": embedder_identity(settings),
        "embedding_dim": int(embedding_dim),
        "chunk_size": int(settings.chunk_size),
        "chunk_overlap": int(settings.chunk_overlap),
    }


def check_metadata(found: dict, settings: Settings, collection: str, *, for_ingest: bool) -> None:
    """Refuse a collection built with another embedding model (or, when ingesting, other chunking).

    Raises:
        StoreError: naming what the collection has, what the settings ask for, and ``--rebuild``.
    """
    from assistant.models import embedder_identity

    found = found or {}
    model, wanted = found.get("embedding_model"), embedder_identity(settings)
    if model is not None and model != wanted:
        raise StoreError(
            f"Collection {collection!r} was built with embedding model {model!r}, but the settings ask for "
            f"{wanted!r}; vectors of different models can't be compared. Fix: re-embed it with "
            "`llama-md retriever reembed` (keeps every chunk and its metadata), re-ingest with "
            f"`{ingest_command(settings)} --rebuild`, or set embedding_model back to {model.split('@')[0]!r}."
        )
    if for_ingest:
        for key in ("chunk_size", "chunk_overlap"):
            if key in found and int(found[key]) != int(getattr(settings, key)):
                raise StoreError(
                    f"Collection {collection!r} was chunked with {key}={found[key]}, this run asks for "
                    f"{getattr(settings, key)}; mixing both would duplicate text. Fix: add --rebuild, or use "
                    f"--{key.replace('_', '-')} {found[key]}."
                )


def open_collection(
    settings: Settings,
    *,
    create_dim: int | None = None,
    chroma_url: str | None = None,
    client=None,
):
    """Open the settings' collection, checking its embedding model.

    Args:
        settings: uses ``collection``, ``embedding_model``, ``chunk_size``, ``chunk_overlap``, ``store_dir``.
        create_dim: when given (ingest), create the collection if missing with this embedding dimension and also
            check the chunking parameters; when None (retrieval), a missing collection is an error.
        chroma_url: a Chroma server instead of the embedded store.
        client: an open client to reuse.

    Returns:
        The chromadb Collection.

    Raises:
        StoreError: missing (the message gives the ingest command), or built with another model / chunking.
    """
    from chromadb.errors import NotFoundError

    client = client or open_client(settings, chroma_url)
    name = settings.collection
    try:
        collection = client.get_collection(name, embedding_function=None)
    except (NotFoundError, ValueError) as exc:
        if create_dim is None:
            where = chroma_url or settings.store_dir
            raise StoreError(
                f"No collection {name!r} in the store at {where}: nothing has been ingested yet. "
                f"Fix: run `{ingest_command(settings)}`."
            ) from exc
        logger.info("Creating collection %r (%s)", name, chroma_url or settings.store_dir)
        return client.create_collection(
            name,
            metadata=store_metadata(settings, create_dim),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
            get_or_create=True,
        )
    check_metadata(collection.metadata or {}, settings, name, for_ingest=create_dim is not None)
    if (
        create_dim is not None
        and int((collection.metadata or {}).get("embedding_dim", create_dim)) != create_dim
    ):
        raise StoreError(
            f"Collection {name!r} holds {collection.metadata['embedding_dim']}-d vectors, the model gives "
            f"{create_dim}-d. Fix: add --rebuild."
        )
    return collection


def store_generation(collection) -> int:
    """The collection's generation counter (0 for a store built before it existed)."""
    return int((collection.metadata or {}).get(GENERATION, 0))


def bump_generation(collection, to: int | None = None) -> int:
    """Raise the generation counter (to ``to``, default: the current one plus 1); returns the new value."""
    meta = dict(collection.metadata or {})
    meta[GENERATION] = int(to) if to is not None else store_generation(collection) + 1
    collection.modify(metadata=meta)
    return meta[GENERATION]


def swap_in(built, settings: Settings, built_docstore: Path, *, chroma_url: str | None = None, client=None):
    """Make a finished ``--rebuild`` collection the settings' collection, with the next generation number.

    The old collection is renamed aside, the built one renamed to the settings' name, then the old one and its
    docstore are replaced; until the renames nothing of the old store has changed.

    Returns:
        The swapped-in collection (same object as ``built``, renamed).
    """
    from chromadb.errors import NotFoundError

    client = client or open_client(settings, chroma_url)
    name = settings.collection
    try:
        old = client.get_collection(name, embedding_function=None)
    except (NotFoundError, ValueError):
        old = None
    bump_generation(built, (store_generation(old) if old is not None else 0) + 1)
    aside = f"{name}__old"
    if old is not None:
        with contextlib.suppress(NotFoundError, ValueError):
            client.delete_collection(aside)
        old.modify(name=aside)
    built.modify(name=name)
    os.replace(built_docstore, docstore_path(settings, chroma_url))
    if old is not None:
        client.delete_collection(aside)
    return built


def drop_collection(settings: Settings, *, chroma_url: str | None = None, client=None) -> bool:
    """Delete the collection and its docstore (a ``--rebuild``'s leftover build collection, an evaluation's own
    store). Returns True when a collection was deleted."""
    from chromadb.errors import NotFoundError

    client = client or open_client(settings, chroma_url)
    docstore_path(settings, chroma_url).unlink(missing_ok=True)
    try:
        client.delete_collection(settings.collection)
    except (NotFoundError, ValueError):
        return False
    return True


def docstore_path(settings: Settings, chroma_url: str | None = None) -> Path:
    """JSON file of the llama-index docstore (document hashes per page and file) for this collection."""
    if chroma_url:
        url = urlparse(chroma_url)
        return settings.store_dir / "docstores" / f"{url.hostname}_{url.port}_{settings.collection}.json"
    return settings.store_dir / "docstores" / f"{settings.collection}.json"


def load_docstore(path: Path):
    """The persisted SimpleDocumentStore at ``path``, or an empty one when the file does not exist yet."""
    from llama_index.core.storage.docstore import SimpleDocumentStore

    if path.is_file():
        return SimpleDocumentStore.from_persist_path(str(path))
    return SimpleDocumentStore()


def save_docstore(docstore, path: Path) -> None:
    """Persist atomically: write a temporary file beside ``path``, then rename it over (a kill never tears it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        docstore.persist(persist_path=tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
