"""Ingest PDFs into the Chroma store: pypdf pages -> SentenceSplitter chunks -> local embeddings -> Chroma.

One llama-index ``IngestionPipeline`` per run with a persisted docstore and ``DocstoreStrategy.UPSERTS``: each
PDF page is a Document (id ``<file>::p<page>``), so an unchanged page is skipped, a changed one has its old
chunks deleted before the new ones are added, and nothing is duplicated. A file-level record
(``file::<file>`` -> sha256) skips an unchanged file without reading it. Chunk ids are deterministic
(``<file>::p<page>::c<i>``), so a run killed at any point and run again leaves the same ids as one clean run.

Per-file atomicity: a PDF is read completely before the store is touched (broken files never write anything);
the docstore is saved (atomically) only after the file's chunks are in Chroma; if writing a file fails, all of that
file's chunks are removed again and the file is reported as failed. A file that vanishes or can't be read keeps
the chunks it already has and is reported. A changed file's old chunks are deleted before its new ones are added.

Never losing what is stored (issue #17): every write happens under the store's lock (:mod:`assistant.rag.lock`,
one writer at a time, the docstore is loaded after it is taken); ``prune`` only removes stored files whose recorded
path lies under one of the given paths (or of the given specialty) and nothing when no input could be read;
``rebuild`` builds into ``<collection>__rebuild`` and swaps it in only when at least one file was read;
``dry_run`` reports what would be added, replaced and removed. A run that changed the store raises its generation
counter, which tells running retrievers to reopen it.

Curated names are pinned (issue #15): a file named like a corpus manifest entry is ingested (and gets the manifest's
title) only when its sha256 is the manifest's; otherwise it fails and what is stored stays. A user's uploads are
ingested with ``uploaded=True`` into that user's own store (:mod:`assistant.rag.sandbox`): titled by file name,
never by a manifest, and capped at ``max_chunks`` before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from assistant.config import ConfigError, Settings
from assistant.errors import LlamaMdError
from assistant.rag.pdf import PdfError, read_pdf
from assistant.rag.report import FileResult, IngestReport

logger = logging.getLogger(__name__)

FILE_PREFIX = "file::"
META_FIELDS = ("file", "file_sha256", "page", "page_label", "title", "specialty", "uploaded")


def _length_sorter():
    """A pipeline step that orders chunks by length before embedding, so each embedding batch holds chunks of
    similar length and pads little (sentence-transformers' ``encode`` sorts the same way, but only within the
    batch llama-index hands it)."""
    from llama_index.core.schema import TransformComponent

    class SortByLength(TransformComponent):
        def __call__(self, nodes, **kwargs):
            return sorted(nodes, key=lambda node: len(node.get_content()))

    return SortByLength()


def chunk_id(i: int, page_doc) -> str:
    """Deterministic id of the i-th chunk of a page document: ``<file>::p<page>::c<i>``."""
    return f"{page_doc.id_}::c{i}"


def page_doc_id(file_name: str, page: int) -> str:
    return f"{file_name}::p{page}"


def max_chunk_tokens(embed_model) -> int:
    """Longest chunk the embedder sees whole: max_seq_length minus [CLS] and [SEP] (254 for MiniLM-L6-v2)."""
    return int(embed_model.model.max_seq_length) - 2


def make_splitter(settings: Settings, embed_model):
    """SentenceSplitter whose chunk_size / chunk_overlap count tokens of the embedding model.

    Raises:
        ConfigError: chunk_size exceeds what the embedder reads (longer chunks would be silently truncated).
    """
    from llama_index.core.node_parser import SentenceSplitter

    limit = max_chunk_tokens(embed_model)
    if settings.chunk_size > limit:
        raise ConfigError(
            f"--chunk-size {settings.chunk_size} is longer than the embedding model reads ({limit} tokens of "
            f"{settings.embedding_model}); the rest of each chunk would be silently cut off. Use --chunk-size {limit} "
            "or less."
        )
    tokenizer = embed_model.model.tokenizer

    def count_tokens(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False, verbose=False)

    return SentenceSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        tokenizer=count_tokens,
        id_func=chunk_id,
    )


def _manifest_index() -> dict[str, tuple[str, str, str]]:
    """file name -> (specialty, title, sha256) from every corpus manifest."""
    from corpora import list_corpora, load_corpus

    index = {}
    for name in list_corpora():
        for entry in load_corpus(name).files:
            index[entry.file] = (name, entry.title, entry.sha256)
    return index


class ChunkLimitError(LlamaMdError, ValueError):
    """A file splits into more chunks than allowed (``max_chunks``); raised before anything is written."""


def manifest_mismatch(name: str, sha: str, known: dict) -> str:
    """Why a file named like a corpus manifest entry but with other bytes is refused ("" when it is fine).

    Only the exact file a manifest pins may carry its name (and so its title and specialty) in the curated store:
    anything else under that name would be cited as that publisher's guideline (issue #15).
    """
    if name not in known or known[name][2] == sha:
        return ""
    spec, _, expected = known[name]
    return (
        f"its name is that of a {spec!r} corpus file, but its sha256 {sha[:12]}... differs from the manifest's "
        f"{expected[:12]}... (corpora/{spec}.toml); the stored copy is kept. Fix: ingest the exact published "
        "file, or rename this one"
    )


def collect_pdfs(paths: Iterable[Path]) -> tuple[list[Path], list[FileResult]]:
    """Expand inputs: folders are walked recursively for ``*.pdf``; other files are skipped with a reason.

    Returns:
        ``(pdf paths in order, results for inputs that can't be ingested)``.
    """
    pdfs, problems = [], []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            problems.append(FileResult(path.name or str(path), "failed", "path does not exist", str(path)))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                problems.append(FileResult(path.name, "skipped", "empty folder", str(path)))
            for file in files:
                if file.suffix.lower() == ".pdf":
                    pdfs.append(file)
                else:
                    problems.append(FileResult(file.name, "skipped", "not a PDF", str(file)))
        elif path.suffix.lower() == ".pdf":
            pdfs.append(path)
        else:
            problems.append(FileResult(path.name, "skipped", "not a PDF", str(path)))
    return pdfs, problems


def file_key(path: Path) -> str:
    """The name that identifies a file in the store: its file name, with bytes that are not UTF-8 written as
    ``\\xNN`` (a name such as ``caf\\xe9.pdf`` from a Latin-1 disk can't go into Chroma or be printed as it is)."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace")


def ingest_paths(
    paths: list[Path],
    settings: Settings,
    *,
    specialty: str | None = None,
    rebuild: bool = False,
    prune: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    batch_size: int = 32,
    chroma_url: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    show_progress: bool = False,
    uploaded: bool = False,
    max_chunks: int | None = None,
) -> IngestReport:
    """Ingest PDFs (files or folders) into the settings' collection; see the module docstring.

    Args:
        paths: PDF files and/or folders (walked recursively).
        settings: collection, embedding_model, chunk_size / chunk_overlap (embedding tokens), home.
        specialty: stored on every chunk; default: the manifest's specialty for known files, else settings.specialty.
        rebuild: build a new collection from ``paths`` alone and swap it in when at least one file was read;
            otherwise the old store stays as it was.
        prune: afterwards remove the stored files under ``paths`` (or of ``specialty``) that are not among this
            run's inputs; refused (nothing removed) when no input could be read.
        dry_run: write nothing; the report lists what would be added, replaced and removed.
        wait: when another writer holds the store's lock, wait for it; False: raise StoreLockedError at once.
        batch_size: chunks per embedding batch.
        chroma_url: ``http://HOST:PORT`` of a Chroma server instead of the embedded store.
        progress: called as ``progress(done_files, total_files, file_name)`` after each file.
        show_progress: tqdm bars over files and embedding batches (the CLI turns them on).
        uploaded: the files are a user's uploads (:mod:`assistant.rag.sandbox`): no manifest lookup, the title is
            the file name, chunks carry ``uploaded=True``. Otherwise a file named like a manifest entry must have
            the manifest's sha256, or it fails and its stored chunks are kept.
        max_chunks: a file that splits into more chunks fails before anything of it is written (None: no cap).

    Returns:
        IngestReport with one FileResult per input (and per pruned file).

    Raises:
        StoreError: the store is unreachable, or the collection was built with another embedding model or
            chunking (use ``rebuild=True``).
        StoreLockedError: ``wait=False`` and another ingest is writing to the store.
        ConfigError: chunk_size longer than the embedding model reads.
    """
    from assistant.rag import store as st
    from assistant.rag.lock import store_lock

    started = time.perf_counter()
    pdfs, problems = collect_pdfs(paths)
    if dry_run:
        report = plan_ingest(paths, pdfs, problems, settings, specialty, rebuild, prune, chroma_url)
        report.seconds = time.perf_counter() - started
        return report
    from assistant.models import load_index_embedder

    embed_model = load_index_embedder(None, settings, batch_size=batch_size)
    splitter = make_splitter(settings, embed_model)
    dim = len(embed_model.get_text_embedding("dimension probe"))
    with store_lock(settings, chroma_url, wait=wait):
        client = st.open_client(settings, chroma_url, fresh=True)  # see what earlier writers wrote
        target = settings
        if rebuild:  # build aside; the old store stays readable and intact until the swap
            target = replace(settings, collection=settings.collection + st.REBUILD_SUFFIX)
            st.drop_collection(target, chroma_url=chroma_url, client=client)
        collection = st.open_collection(target, create_dim=dim, chroma_url=chroma_url, client=client)
        ds_path = st.docstore_path(target, chroma_url)
        report = IngestReport(settings.collection, chroma_url or str(settings.store_dir))
        report.files.extend(problems)
        try:
            _run_files(
                pdfs,
                settings,
                specialty,
                collection,
                ds_path,
                embed_model,
                splitter,
                report,
                progress,
                show_progress,
                uploaded,
                max_chunks,
            )
            if prune and not rebuild:
                _prune(paths, pdfs, specialty, collection, ds_path, report)
        except BaseException:
            if rebuild:  # the old store was never touched
                st.drop_collection(target, chroma_url=chroma_url, client=client)
            else:  # files finished before the interruption are in: tell the readers
                with contextlib.suppress(Exception):
                    st.bump_generation(collection)
            raise
        changed = any(f.chunks_added or f.chunks_removed for f in report.files)
        if rebuild and report.ok:
            collection = st.swap_in(collection, settings, ds_path, chroma_url=chroma_url, client=client)
        elif rebuild:
            st.drop_collection(target, chroma_url=chroma_url, client=client)
            report.notes.append("--rebuild: no file could be read, so the old store was kept unchanged")
            collection = _open_existing(settings, chroma_url, client)
        elif changed:
            st.bump_generation(collection)
        report.total_chunks = collection.count() if collection is not None else 0
    report.seconds = time.perf_counter() - started
    return report


def _open_existing(settings: Settings, chroma_url: str | None, client):
    from assistant.rag import store as st

    try:
        return st.open_collection(settings, chroma_url=chroma_url, client=client)
    except st.StoreError:
        return None


def _run_files(
    pdfs,
    settings,
    specialty,
    collection,
    ds_path,
    embed_model,
    splitter,
    report,
    progress,
    show_progress,
    uploaded=False,
    max_chunks=None,
) -> None:
    """Ingest each PDF in turn into ``collection``, saving the docstore after each; fills ``report``."""
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from tqdm.auto import tqdm

    from assistant.rag import store as st
    from corpora import sha256_of

    docstore = st.load_docstore(ds_path)
    pipeline = IngestionPipeline(
        transformations=[splitter, _length_sorter(), embed_model],
        vector_store=ChromaVectorStore(chroma_collection=collection),
        docstore=docstore,
        docstore_strategy=DocstoreStrategy.UPSERTS,
    )
    known = {} if uploaded else _manifest_index()
    seen: dict[str, str] = {}  # file name -> sha256 in this run
    bar = tqdm(pdfs, desc="files", unit="file", disable=not show_progress)
    for done, path in enumerate(bar, start=1):
        t0 = time.perf_counter()
        name = file_key(path)
        result = FileResult(name, "failed", path=str(path))
        try:
            try:
                sha = sha256_of(path)
            except OSError as exc:
                raise _unreadable(exc) from exc
            if name in seen:
                same = seen[name] == sha
                result.status = "skipped" if same else "failed"
                result.reason = (
                    "same file given twice"
                    if same
                    else "another file with this name was ingested in this run; rename one (names identify files)"
                )
            elif mismatch := manifest_mismatch(name, sha, known):
                result.reason = mismatch
            else:
                seen[name] = sha
                spec, title, _ = known.get(name, (None, None, None))
                meta = {"specialty": specialty or spec or settings.specialty or "", "title": title}
                if uploaded:
                    meta.update(title=name, uploaded=True)
                _ingest_file(
                    path, name, sha, meta, pipeline, collection, docstore, result, show_progress, max_chunks
                )
                st.save_docstore(docstore, ds_path)
        except (PdfError, ChunkLimitError) as exc:
            result.status, result.reason = getattr(exc, "status", "failed"), str(exc)
            if docstore.get_document(FILE_PREFIX + name, raise_error=False) is not None:
                result.reason += "; its stored chunks are kept"
        except Exception as exc:  # one file's failure never aborts the run
            logger.exception("Ingesting %s failed", name)
            result.status, result.reason = "failed", f"{type(exc).__name__}: {exc}"
            result.chunks_removed += _remove_file(name, collection, docstore)
            result.chunks_added = 0
            st.save_docstore(docstore, ds_path)
        result.seconds = time.perf_counter() - t0
        report.files.append(result)
        bar.set_postfix(chunks=collection.count(), refresh=False)
        if progress is not None:
            progress(done, len(pdfs), name)


def _unreadable(exc: OSError) -> PdfError:
    """The error for a file that vanished or can't be opened: reported, and its stored chunks are kept."""
    what = "vanished" if isinstance(exc, FileNotFoundError) else f"can't be read ({exc.strerror or exc})"
    return PdfError(f"the file {what}; check the path and its permissions, then run again")


def _stored_records(docstore) -> dict[str, dict]:
    """file name -> file record metadata (sha256, path, pages, chunks, specialty) of every stored file."""
    return {
        doc_id[len(FILE_PREFIX) :]: dict(doc.metadata)
        for doc_id, doc in docstore.docs.items()
        if doc_id.startswith(FILE_PREFIX)
    }


def prune_candidates(paths, pdfs, specialty: str | None, records: dict[str, dict]) -> list[str]:
    """Stored files that ``--prune`` removes: under one of ``paths`` (or of ``specialty``) and not among ``pdfs``.

    A path that does not exist covers nothing, so a mistyped path can never empty the store; a stored file whose
    recorded path is outside every given path (another folder, another specialty) is never touched.
    """
    roots = [Path(p).resolve() for p in paths if Path(p).exists()]
    listed = {file_key(p) for p in pdfs}
    out = []
    for name, meta in sorted(records.items()):
        if name in listed:
            continue
        where = Path(meta["path"]).resolve() if meta.get("path") else None
        under = where is not None and any(where == r or r in where.parents for r in roots)
        if under or (specialty and meta.get("specialty") == specialty):
            out.append(name)
    return out


def _prune(paths, pdfs, specialty, collection, ds_path, report: IngestReport) -> None:
    from assistant.rag import store as st

    if not report.ok:
        report.notes.append("--prune refused: no input could be read, so nothing was removed")
        logger.warning("--prune refused: no input could be read; the store is unchanged")
        return
    docstore = st.load_docstore(ds_path)
    for name in prune_candidates(paths, pdfs, specialty, _stored_records(docstore)):
        removed = _remove_file(name, collection, docstore)
        report.files.append(FileResult(name, "pruned", "not among this run's inputs", chunks_removed=removed))
    st.save_docstore(docstore, ds_path)


def plan_ingest(paths, pdfs, problems, settings, specialty, rebuild, prune, chroma_url) -> IngestReport:
    """The ``--dry-run`` report: what an ingest would add, replace, leave unchanged and remove; writes nothing."""
    from assistant.rag import store as st
    from corpora import sha256_of

    report = IngestReport(settings.collection, chroma_url or str(settings.store_dir), dry_run=True)
    report.files.extend(problems)
    records = _stored_records(st.load_docstore(st.docstore_path(settings, chroma_url)))
    for path in pdfs:
        name = file_key(path)
        try:
            sha = sha256_of(path)
        except OSError as exc:
            report.files.append(FileResult(name, "failed", str(_unreadable(exc)), str(path)))
            continue
        record = None if rebuild else records.get(name)
        if record is None:
            status = "to add"
        else:
            status = "unchanged" if record.get("file_sha256") == sha else "to replace"
        report.files.append(FileResult(name, status, "dry run", str(path)))
    if rebuild:  # the rebuilt store holds the inputs only
        listed = {file_key(p) for p in pdfs}
        gone = sorted(set(records) - listed)
    else:
        gone = prune_candidates(paths, pdfs, specialty, records) if prune else []
    for name in gone:
        chunks = int(records[name].get("chunks", 0))
        report.files.append(FileResult(name, "to remove", "dry run", chunks_removed=chunks))
    return report


def _ingest_file(
    path: Path,
    name: str,
    sha: str,
    meta: dict,
    pipeline,
    collection,
    docstore,
    result: FileResult,
    show_progress: bool = False,
    max_chunks: int | None = None,
) -> None:
    """Add or refresh one PDF stored as ``name``; fills ``result``. Raises PdfError (unreadable) or
    ChunkLimitError (more than ``max_chunks`` chunks) before anything is written.

    A changed file's old chunks are deleted before the new ones are added: Chroma's ``add()`` ignores ids it
    already holds, so a chunk id reused by the new version would otherwise keep its old text.
    """
    from llama_index.core import Document

    record = docstore.get_document(FILE_PREFIX + name, raise_error=False)
    if record is not None and record.metadata.get("file_sha256") == sha:
        if collection.get(where={"file_sha256": sha}, limit=1, include=[])["ids"]:
            result.status, result.reason = "unchanged", "same sha256 as stored"
            result.pages = record.metadata.get("pages", 0)
            result.chunks_unchanged = record.metadata.get("chunks", 0)
            return
    try:
        pdf = read_pdf(path)  # raises PdfError: nothing written yet
    except OSError as exc:
        raise _unreadable(exc) from exc
    before = _count_file(name, collection)
    docs = []
    for page in pdf.pages:
        metadata = {
            "file": name,
            "file_sha256": sha,
            "page": page.number,
            "page_label": page.label,
            "title": meta["title"] or pdf.title,
            "specialty": meta["specialty"],
        }
        if meta.get("uploaded"):
            metadata["uploaded"] = True
        docs.append(
            Document(
                id_=page_doc_id(name, page.number),
                text=page.text,
                metadata=metadata,
                excluded_embed_metadata_keys=list(META_FIELDS),  # embed the text only
                excluded_llm_metadata_keys=list(META_FIELDS),  # and count only text tokens in chunk_size
            )
        )
    if max_chunks is not None:  # split once more up front: a bomb is refused before embedding or writing
        splitter = pipeline.transformations[0]
        n_chunks = len(splitter(docs))
        if n_chunks > max_chunks:
            raise ChunkLimitError(
                f"it splits into {n_chunks} chunks from {len(pdf.pages)} pages, more than the limit of "
                f"{max_chunks} (upload_max_chunks), so nothing was stored; upload a shorter document"
            )
    if before or record is not None:  # a new version (or chunks a lost record left behind): start clean
        _remove_file(name, collection, docstore)
    nodes = pipeline.run(documents=docs, store_doc_text=False, show_progress=show_progress)
    after = _count_file(name, collection)
    # file record last: it claims the file is complete
    docstore.add_documents(
        [
            Document(
                id_=FILE_PREFIX + name,
                text="",
                metadata={
                    "file_sha256": sha,
                    "path": str(path.resolve()),
                    "specialty": meta["specialty"],
                    "pages": len(pdf.pages),
                    "page_numbers": [p.number for p in pdf.pages],
                    "chunks": after,
                },
            )
        ],
        allow_update=True,
    )
    result.status = "ingested"
    result.reason = f"{pdf.empty_pages} page(s) without text" if pdf.empty_pages else ""
    result.pages = len(pdf.pages)
    result.chunks_added = len(nodes)
    result.chunks_removed = max(0, before + len(nodes) - after)
    result.chunks_unchanged = after - len(nodes)


def _count_file(name: str, collection) -> int:
    return len(collection.get(where={"file": name}, include=[])["ids"])


def _stored_files(docstore) -> set[str]:
    return {doc_id[len(FILE_PREFIX) :] for doc_id in docstore.docs if doc_id.startswith(FILE_PREFIX)}


def _remove_file(name: str, collection, docstore) -> int:
    """Delete every chunk and docstore entry of one file; returns the number of chunks removed."""
    removed = _count_file(name, collection)
    collection.delete(where={"file": name})
    record = docstore.get_document(FILE_PREFIX + name, raise_error=False)
    pages = record.metadata.get("page_numbers", []) if record is not None else []
    for number in pages:
        docstore.delete_document(page_doc_id(name, number), raise_error=False)
    for doc_id in [d for d in docstore.get_all_document_hashes().values() if d.startswith(name + "::p")]:
        docstore.delete_document(doc_id, raise_error=False)
    docstore.delete_document(FILE_PREFIX + name, raise_error=False)
    return removed
