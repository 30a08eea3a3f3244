"""Ingest one uploaded PDF in a separate, limited process, so a hostile file can't take the server down (issue #15).

The chat server never parses an upload itself: :func:`ingest_sandboxed` runs ``python -m assistant.rag.sandbox``
with

* an address-space limit (``RLIMIT_AS`` = ``upload_max_memory_mb``): a PDF that inflates in memory ends the child
  with a MemoryError, not the server with the OOM killer;
* a wall-clock limit (``upload_timeout_s``): past it the child's whole process group is killed (SIGKILL);
* a page-count check (``upload_max_pages``) on the page tree alone, before any text is extracted;
* a chunk cap (``upload_max_chunks``): the text is split and counted before anything is embedded or written
  (:func:`assistant.rag.ingest.ingest_paths` ``max_chunks``), so a PDF whose pages share one huge content stream
  stops with an error instead of writing tens of thousands of chunks.

The child writes only to the store it is given (a user's own store, see :mod:`assistant.chat.uploads`), under
that store's writer lock. Anything it leaves behind when killed (chunks of the file it was writing) is removed
again, so a failure leaves what was stored before unchanged. The memory limit is set by the child on itself as its
first statement rather than by ``preexec_fn``: the server is multi-threaded (Streamlit runs each session in a
thread) and CPython documents ``preexec_fn`` as unsafe in the presence of threads (it may deadlock).

    python -m assistant.rag.sandbox --settings settings.json --result result.json --memory-mb 4096 upload.pdf
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.config import Settings

logger = logging.getLogger(__name__)

MEMORY_EXIT = 3  # the child's exit code after a MemoryError
_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "failed to map segment", "std::bad_alloc")
_CRASH_SIGNALS = (-signal.SIGKILL, -signal.SIGABRT, -signal.SIGSEGV, -signal.SIGBUS)


@dataclass
class UploadResult:
    """What happened to one upload. ``pages`` counts the PDF's pages (0 when unknown), ``chunks`` the passages now
    stored for it, ``seconds`` the wall-clock time of the sandboxed ingest; ``error`` is empty when ``ok``."""

    file: str
    ok: bool
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def message(self) -> str:
        """One plain sentence for the user."""
        if self.ok:
            pages, chunks = _plural(self.pages, "page"), _plural(self.chunks, "passage")
            return f"{self.file} was added to your documents ({pages}, {chunks})."
        return f"{self.file} was not added: {self.error}."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def ingest_sandboxed(path: Path, store: Settings) -> UploadResult:
    """Ingest ``path`` into ``store``'s collection in a child process under ``store``'s upload limits.

    Args:
        path: the saved upload (a PDF file).
        store: settings whose ``home`` holds the target store (a user's own); its ``upload_max_pages``,
            ``upload_max_chunks``, ``upload_timeout_s`` (s) and ``upload_max_memory_mb`` (MiB) are the limits.

    Returns:
        The UploadResult; a refused, broken, too slow or too large file is ``ok=False`` with the reason in
        ``error``, and the store holds nothing of it. Never raises for a bad file.
    """
    path = Path(path)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llama-md-upload-") as tmp:
        settings_file, result_file, err_file = (
            Path(tmp) / n for n in ("settings.json", "result.json", "err")
        )
        settings_file.write_text(json.dumps(store.to_dict()))
        command = [
            sys.executable, "-m", __name__, "--settings", str(settings_file), "--result", str(result_file),
            "--memory-mb", str(store.upload_max_memory_mb), str(path),
        ]  # fmt: skip
        root = str(Path(__file__).resolve().parents[2])  # where `assistant` and `corpora` are importable
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "TOKENIZERS_PARALLELISM": "false"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        timed_out = False
        with err_file.open("wb") as err:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                start_new_session=True,  # its own process group: a kill takes every thread and child with it
            )  # fmt: skip
            try:
                rc = proc.wait(timeout=store.upload_timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
        stderr = err_file.read_bytes()[-4000:].decode("utf-8", "replace")
        found = json.loads(result_file.read_text()) if result_file.is_file() else None
    result = _result(path.name, store, found, rc, timed_out, stderr)
    result.seconds = time.perf_counter() - started
    if not result.ok and found is None:  # killed or crashed mid-way: drop whatever it wrote
        removed = discard_file(store, path.name)
        logger.warning("Upload %s stopped (rc %s); removed %d partial chunks", path.name, rc, removed)
    return result


def _result(name: str, store: Settings, found, rc: int, timed_out: bool, stderr: str) -> UploadResult:
    """The UploadResult for how the child ended (see :func:`ingest_sandboxed`)."""
    if timed_out:
        return UploadResult(
            name, False, error=f"ingesting it took longer than the {store.upload_timeout_s:g} s allowed "
            "(upload_timeout_s), so it was stopped and nothing of it was stored",
        )  # fmt: skip
    if found is not None and found.get("kind") != "memory":
        return UploadResult(
            name, bool(found["ok"]), int(found["pages"]), int(found["chunks"]), 0.0, found["error"]
        )
    if (
        found is not None
        or rc == MEMORY_EXIT
        or rc in _CRASH_SIGNALS
        or any(s in stderr for s in _MEMORY_SIGNS)
    ):
        return UploadResult(
            name, False, error=f"ingesting it needed more than the {store.upload_max_memory_mb} MiB of memory "
            "allowed (upload_max_memory_mb), so it was stopped and nothing of it was stored",
        )  # fmt: skip
    logger.error("Upload ingest of %s exited with code %s:\n%s", name, rc, stderr)
    return UploadResult(
        name, False, error=f"the ingest process failed (exit code {rc}); nothing of it was stored"
    )


def discard_file(store: Settings, name: str) -> int:
    """Remove every chunk and docstore record of file ``name`` from ``store``'s collection; returns chunks removed."""
    from assistant.rag import store as st
    from assistant.rag.ingest import _remove_file
    from assistant.rag.lock import store_lock

    if not store.store_dir.is_dir():
        return 0
    with store_lock(store):
        client = st.open_client(store, fresh=True)
        try:
            collection = st.open_collection(store, client=client)
        except st.StoreError:
            return 0
        docstore = st.load_docstore(st.docstore_path(store))
        removed = _remove_file(name, collection, docstore)
        st.save_docstore(docstore, st.docstore_path(store))
        if removed:
            st.bump_generation(collection)
    return removed


def count_pages(path: Path) -> int | None:
    """Pages in the PDF's page tree, without extracting any text; None when pypdf can't tell (ingest says why)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            reader.decrypt("")
        return len(reader.pages)
    except Exception:  # broken or encrypted: read_pdf reports it properly
        return None


def run_child(path: Path, store: Settings) -> dict:
    """The child's work: page check, then :func:`ingest_paths` with ``uploaded=True`` and the chunk cap."""
    from assistant.rag.ingest import ingest_paths

    pages = count_pages(path)
    if pages is not None and pages > store.upload_max_pages:
        error = (
            f"it has {pages} pages, more than the {store.upload_max_pages} allowed (upload_max_pages), so it was "
            "not read; upload only the part you need"
        )
        return {"ok": False, "pages": pages, "chunks": 0, "error": error}
    report = ingest_paths(
        [path], store, specialty="uploads", uploaded=True, max_chunks=store.upload_max_chunks
    )
    file = report.files[0]
    ok = file.status in ("ingested", "unchanged")
    chunks = file.chunks_added + file.chunks_unchanged if ok else 0
    return {"ok": ok, "pages": file.pages or pages or 0, "chunks": chunks, "error": "" if ok else file.reason}


def main(argv: list[str] | None = None) -> int:
    """Child entry point: limit memory first, then ingest and write the result JSON."""
    p = argparse.ArgumentParser(description="Ingest one upload under limits (started by ingest_sandboxed).")
    p.add_argument("path", type=Path)
    p.add_argument("--settings", type=Path, required=True, help="JSON of the target store's Settings")
    p.add_argument("--result", type=Path, required=True, help="where to write the result JSON")
    p.add_argument("--memory-mb", type=int, required=True, help="address-space limit, MiB")
    args = p.parse_args(argv)
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        store = Settings(**json.loads(args.settings.read_text()))
        found = run_child(args.path, store)
    except MemoryError:
        found = None
    if found is None:
        args.result.write_text(json.dumps({"kind": "memory"}))
        return MEMORY_EXIT
    args.result.write_text(json.dumps(asdict(UploadResult(args.path.name, **found))))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
