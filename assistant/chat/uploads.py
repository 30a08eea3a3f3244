"""PDF uploads from the chat UI: sanitized names, a size limit, a check that the bytes really are a PDF, and each
user's own folder and store (issue #15).

Where a user's data lives (``key`` = :func:`assistant.chat.users.user_key`, which does not reveal the identity)::

    <home>/uploads/<key>/x.pdf, x-2.pdf ...   the files (the page view opens them from here)
    <home>/users/<key>/store/                 the user's own Chroma store (collection = settings.collection)

A separate store folder per user is the simplest isolation there is: an upload can't reach the curated store
(``<home>/store``) or another user's chunks through a missing ``where`` filter, names never collide across users,
each user's writes take their own lock, and "delete my data" is removing two folders. Uploads are ingested in a
limited child process (:mod:`assistant.rag.sandbox`); retrieval merges the user's store with the curated one
(:mod:`assistant.chat.library`). Both folders are owner-only (``0700``, files ``0600``: :mod:`assistant.permissions`).

One user can't starve the others (issue #25): at most ``upload_max_ingests_per_user`` of a user's uploads are read
at once, ``upload_max_ingests`` of everyone's, and a user keeps at most ``upload_max_files_per_user`` files and
``upload_quota_mb`` MiB of them; past a cap the upload is refused with one sentence and nothing is written.

    result = add_upload("letter.pdf", data, settings, user_id)   # save + sandboxed ingest; result.message
    delete_uploads(settings, user_id)                            # files + store; returns files removed
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from assistant.chat.users import user_key
from assistant.config import Settings
from assistant.errors import LlamaMdError
from assistant.permissions import private_dir, restrict_tree
from assistant.rag.sandbox import UploadResult, ingest_sandboxed

MAX_UPLOAD_BYTES = 50 * 2**20  # 50 MiB: the largest corpus PDF here is 3.4 MB
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_INGESTS: dict[str, int] = {}  # user key -> upload ingests running in this process
_INGESTS_LOCK = threading.Lock()


class UploadError(LlamaMdError, ValueError):
    """An uploaded file is refused; the message says why and what is accepted."""


def safe_name(name: str) -> str:
    """A file name without folders or unusual characters, ending in .pdf ("../../x y.PDF" -> "x_y.pdf")."""
    stem = re.sub(r"\.pdf$", "", Path(name.replace("\\", "/")).name, flags=re.IGNORECASE)
    stem = _UNSAFE.sub("_", stem).strip("._") or "upload"
    return f"{stem[:120]}.pdf"


def save_upload(name: str, data: bytes, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Validate an upload and write it atomically to ``folder`` (made ``0700``; the file is ``0600``); returns the
    saved path.

    Raises:
        UploadError: not a ``.pdf`` name, not PDF bytes (no ``%PDF-`` header), empty, or over ``max_bytes``.
    """
    if not name.lower().endswith(".pdf"):
        raise UploadError(f"{name!r} is not a PDF: only .pdf files can be added to the library.")
    if not data:
        raise UploadError(f"{name!r} is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            f"{name!r} is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB."
        )
    if not data[:1024].lstrip().startswith(b"%PDF-"):
        raise UploadError(f"{name!r} is named .pdf but its content is not a PDF (no %PDF- header).")
    private_dir(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return _link_unique(Path(tmp), folder / safe_name(name))
    finally:
        Path(tmp).unlink(missing_ok=True)


def _link_unique(tmp: Path, wanted: Path, max_tries: int = 10_000) -> Path:
    """Give the complete file ``tmp`` the first free name of ``x.pdf``, ``x-2.pdf``, ``x-3.pdf`` ...

    ``link(2)`` fails with EEXIST when the name exists, like ``open(O_CREAT | O_EXCL)``, and makes the name appear
    with all its bytes at once: simultaneous uploads of one name never overwrite or tear each other's file.
    """
    for n in range(1, max_tries + 1):
        path = wanted if n == 1 else wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}")
        try:
            os.link(tmp, path)
            return path
        except FileExistsError:
            continue
    raise UploadError(f"{wanted.name!r}: {max_tries} files of that name exist already; rename the file.")


def user_uploads_dir(settings: Settings, user_id: str) -> Path:
    """Folder of ``user_id``'s uploaded PDFs: ``<home>/uploads/<user_key>``."""
    return settings.uploads_dir / user_key(user_id)


def user_store_settings(settings: Settings, user_id: str) -> Settings:
    """``settings`` whose store is ``user_id``'s own: ``home`` = ``<home>/users/<user_key>`` (store/ under it)."""
    return key_store_settings(settings, user_key(user_id))


def key_store_settings(settings: Settings, key: str) -> Settings:
    """:func:`user_store_settings` by :func:`~assistant.chat.users.user_key` (for the retention purge)."""
    return dataclasses.replace(settings, home=settings.home / "users" / key)


def ingest_upload(path: Path, settings: Settings, user_id: str) -> UploadResult:
    """Ingest a saved upload into ``user_id``'s own store in a limited child process (:mod:`assistant.rag.sandbox`).

    The store's folder ``<home>/users/<key>`` is made owner-only before the child writes, and everything the child
    wrote under it is set to ``0700`` / ``0600`` after.

    Returns:
        The UploadResult (``message`` is one sentence for the user); never raises for a bad file.
    """
    store = user_store_settings(settings, user_id)
    private_dir(store.home, top=settings.home)
    try:
        return ingest_sandboxed(Path(path), store)
    finally:
        restrict_tree(store.home)


@contextlib.contextmanager
def ingest_place(settings: Settings, key: str, *, count_total: bool = True) -> Iterator[None]:
    """Hold one of this process's upload-ingest places for the user with ``key`` for the body of the ``with``.

    Args:
        settings: ``upload_max_ingests_per_user`` and ``upload_max_ingests`` are the caps.
        key: :func:`~assistant.chat.users.user_key` of the user.
        count_total: False: check only the user's own cap (the retention purge holds a user's place so that it
            never deletes a store an upload is writing; it takes nobody else's).

    Raises:
        UploadError: the user (or everyone together) already runs as many ingests as allowed; the message is one
            clause for :class:`UploadResult` ``error``.
    """
    with _INGESTS_LOCK:
        mine, total = _INGESTS.get(key, 0), sum(_INGESTS.values())
        if mine >= settings.upload_max_ingests_per_user:
            raise UploadError(
                f"{mine} of your uploads {'is' if mine == 1 else 'are'} still being read, the most at once "
                "(upload_max_ingests_per_user); add this one when it is done"
            )
        if count_total and total >= settings.upload_max_ingests:
            raise UploadError(
                f"{total} upload{' is' if total == 1 else 's are'} being read right now, the most at once "
                "(upload_max_ingests); try again in a minute"
            )
        _INGESTS[key] = mine + 1
    try:
        yield
    finally:
        with _INGESTS_LOCK:
            _INGESTS[key] -= 1
            if not _INGESTS[key]:
                del _INGESTS[key]


def quota_problem(settings: Settings, user_id: str, size: int) -> str:
    """Why one more upload of ``size`` bytes would pass ``user_id``'s quota, as a clause; "" when it fits.

    Counts the user's stored PDFs against ``upload_max_files_per_user`` and their bytes plus ``size`` against
    ``upload_quota_mb`` (MiB).
    """
    folder = user_uploads_dir(settings, user_id)
    sizes = [p.stat().st_size for p in folder.glob("*.pdf")] if folder.is_dir() else []
    if len(sizes) >= settings.upload_max_files_per_user:
        return (
            f"you keep {len(sizes)} uploaded files already, the most allowed (upload_max_files_per_user); "
            "delete yours with 'Delete my data' first"
        )
    quota = settings.upload_quota_mb * 2**20
    if sum(sizes) + size > quota:
        return (
            f"your uploads would take {(sum(sizes) + size) / 2**20:.1f} MiB, over your quota of "
            f"{settings.upload_quota_mb} MiB (upload_quota_mb); delete yours with 'Delete my data' first"
        )
    return ""


def add_upload(name: str, data: bytes, settings: Settings, user_id: str) -> UploadResult:
    """Save an upload under a free name in the user's folder and ingest it into the user's store.

    A file that is refused (not a PDF, too large, past the user's quota or ingest caps: see the module docstring)
    or fails to ingest is not kept; the user's earlier uploads and the curated store are unchanged either way.

    Returns:
        The UploadResult; ``file`` is the name it was saved under (``x-2.pdf`` when ``x.pdf`` exists).
    """
    try:
        with ingest_place(settings, user_key(user_id)):
            problem = quota_problem(settings, user_id, len(data))
            if problem:
                return UploadResult(safe_name(name), False, error=problem)
            folder = private_dir(user_uploads_dir(settings, user_id), top=settings.home)  # uploads/ too
            path = save_upload(name, data, folder)
            result = ingest_upload(path, settings, user_id)
            if not result.ok:
                path.unlink(missing_ok=True)
            return result
    except UploadError as exc:
        return UploadResult(safe_name(name), False, error=str(exc).rstrip("."))


def upload_path(settings: Settings, user_id: str, file: str) -> Path:
    """The saved PDF behind one of ``user_id``'s sources (``Source.file`` with ``uploaded=True``), to show its pages.

    Look uploaded sources up here, never with :func:`assistant.rag.render.find_pdf`: an upload may carry a curated
    file's name, and find_pdf searches the corpus folders first, so it would show the real guideline's page.

    Raises:
        UploadError: ``file`` is not a plain PDF name, or it is not among this user's uploads.
    """
    folder = user_uploads_dir(settings, user_id).resolve()
    candidate = (folder / file).resolve()
    if file != Path(file).name or candidate.parent != folder or not candidate.is_file():
        raise UploadError(
            f"{file!r} is not one of your uploaded documents (they are: {', '.join(list_uploads(settings, user_id))}"
            " or none); upload it again to see its pages."
        )
    return candidate


def list_uploads(settings: Settings, user_id: str) -> list[str]:
    """File names of ``user_id``'s uploads, sorted."""
    folder = user_uploads_dir(settings, user_id)
    return sorted(p.name for p in folder.glob("*.pdf")) if folder.is_dir() else []


def delete_uploads(settings: Settings, user_id: str) -> int:
    """Delete ``user_id``'s uploaded files and their store ("delete my data"); returns the number of files removed.

    The curated store and other users' data are not touched.
    """
    return delete_key_data(settings, user_key(user_id))


def delete_key_data(settings: Settings, key: str) -> int:
    """:func:`delete_uploads` by :func:`~assistant.chat.users.user_key`; returns the number of files removed."""
    from assistant.chat.library import forget_user
    from assistant.rag import store as st
    from assistant.rag.lock import store_lock

    uploads = settings.uploads_dir / key
    removed = len(list(uploads.glob("*.pdf"))) if uploads.is_dir() else 0
    store = key_store_settings(settings, key)
    forget_user(store)
    if store.store_dir.is_dir():
        with store_lock(store):
            st.drop_collection(store, client=st.open_client(store, fresh=True))
    for folder in (uploads, store.home):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)
    return removed
