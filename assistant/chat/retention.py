"""Data that outlives its owner (issue #25): uploads from before per-user stores, and the retention purge.

**Uploads from before per-user stores.** Until issue #15 an upload was saved flat as ``<home>/uploads/x.pdf`` and
ingested into the curated store, where every user retrieved it and the page view served it by name.
:func:`migrate_flat_uploads` runs once at each start of the chat (:meth:`ChatService.from_settings`): it removes
those files' passages from the curated store (files whose docstore record points into ``<home>/uploads/`` itself,
and any chunk marked ``uploaded``), then gives each flat file to its owner, i.e. moves it into that owner's folder
and ingests it into their own store through the sandbox, in single-user mode, where the one local owner
uploaded it. In team mode nobody can tell who uploaded it, so it is deleted. One log line says what was done.
The page view no longer looks in the flat folder (:func:`assistant.rag.render.find_pdf`).

**Retention.** :func:`purge_expired` deletes chats not written to for ``retention_days`` days, uploads older than
that (the file, then its passages in the owner's store), and a user's whole store and folder once no upload of
theirs is left. The chat runs it at start and then every ``PURGE_EVERY_S`` seconds on a :class:`RetentionTimer`
thread, so a server that runs for months still forgets on time. A user whose upload is being read right now is
skipped until the next round (:func:`assistant.chat.uploads.ingest_place`), so the purge never deletes a store an
ingest is writing to.

    report = purge_expired(settings, history)      # PurgeReport(chats=2, uploads=1, stores=1)
    timer = RetentionTimer(settings, history).start()  # daemon thread; timer.stop() ends it
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.chat.history import SECONDS_PER_DAY, ChatHistory
from assistant.chat.users import user_key
from assistant.config import Settings

logger = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0  # the purge runs hourly: a chat or upload outlives its retention by an hour at most
_KEY = re.compile(r"[0-9a-f]{16}")  # user_key(): the name of a user's folder


@dataclass(frozen=True)
class PurgeReport:
    """What one :func:`purge_expired` deleted: chats, uploaded files, and user stores (whole users' data)."""

    chats: int = 0
    uploads: int = 0
    stores: int = 0


def purge_expired(settings: Settings, history: ChatHistory, *, now: float | None = None) -> PurgeReport:
    """Delete what is past ``settings.retention_days`` (see the module docstring); nothing when it is 0.

    Args:
        settings: ``retention_days``, and ``home`` (``uploads/<key>/``, ``users/<key>/``).
        history: the chat history to purge.
        now: the current Unix time, seconds (default ``time.time()``).

    Returns:
        The counts deleted; one INFO line says them when any is non-zero (counts only, no names or text).
    """
    from assistant.chat.uploads import UploadError, delete_key_data, ingest_place, key_store_settings
    from assistant.rag.sandbox import discard_file

    if not settings.retention_days:
        return PurgeReport()
    now = time.time() if now is None else now
    cutoff = now - settings.retention_days * SECONDS_PER_DAY
    chats = history.purge(settings.retention_days, now=now)
    uploads = stores = 0
    for key in _user_keys(settings):
        folder = settings.uploads_dir / key
        try:
            with ingest_place(settings, key, count_total=False):  # not while an upload of theirs is read
                files = _pdfs(folder)
                old = [p for p in files if p.stat().st_mtime < cutoff]
                if len(old) == len(files):  # nothing of theirs is left (or never was): the whole store goes
                    had_store = key_store_settings(settings, key).home.is_dir()
                    uploads += delete_key_data(settings, key)
                    stores += had_store
                    continue
                for path in old:
                    discard_file(
                        key_store_settings(settings, key), path.name
                    )  # passages first, then the file
                    path.unlink(missing_ok=True)
                    uploads += 1
        except UploadError:
            continue  # an upload of this user is being read: next round
    if chats or uploads or stores:
        logger.info(
            "Retention (%d days): deleted %d chats, %d uploaded files and %d users' stores",
            settings.retention_days,
            chats,
            uploads,
            stores,
        )
    return PurgeReport(chats, uploads, stores)


def _pdfs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf")) if folder.is_dir() else []


def _user_keys(settings: Settings) -> list[str]:
    """Keys of every user with an uploads folder or a store."""
    keys = set()
    for parent in (settings.uploads_dir, settings.home / "users"):
        if parent.is_dir():
            keys |= {p.name for p in parent.iterdir() if p.is_dir() and _KEY.fullmatch(p.name)}
    return sorted(keys)


class RetentionTimer:
    """A daemon thread running :func:`purge_expired` every ``every_s`` seconds until :meth:`stop`.

    Args:
        settings: as :func:`purge_expired`.
        history: as :func:`purge_expired`.
        every_s: seconds between two purges (default ``PURGE_EVERY_S``); the first runs ``every_s`` after start.
    """

    def __init__(self, settings: Settings, history: ChatHistory, every_s: float = PURGE_EVERY_S) -> None:
        self.settings, self.history, self.every_s = settings, history, every_s
        self.runs = 0  # purges done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="llama-md-retention", daemon=True)

    def start(self) -> RetentionTimer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the thread to end and wait up to ``timeout_s`` seconds for a purge in progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                purge_expired(self.settings, self.history)
            except Exception:  # noqa: BLE001 - a failed round is logged and the next one tries again
                logger.exception("Retention purge failed; trying again in %.0f s", self.every_s)
            self.runs += 1


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate_flat_uploads` did: flat files given to their owner, flat files deleted (or refused by
    the owner's ingest), and passages of old uploads removed from the curated store."""

    moved: int = 0
    deleted: int = 0
    curated_passages: int = 0


def migrate_flat_uploads(settings: Settings, owner: str | None) -> MigrationReport:
    """Move or delete uploads from before per-user stores (see the module docstring); a no-op when there are none.

    Args:
        settings: the server's settings (``uploads_dir``, the curated store).
        owner: who uploaded them: the local owner in single-user mode (they are moved to that user's folder and
            store); None in team mode (they are deleted).

    Returns:
        The counts; one INFO line says them when any is non-zero.
    """
    curated = _remove_from_curated(settings)
    moved = deleted = 0
    flat = settings.uploads_dir
    leftovers = [p for p in flat.iterdir() if not p.is_dir() or p.is_symlink()] if flat.is_dir() else []
    for path in sorted(leftovers):
        if owner and path.suffix.lower() == ".pdf" and path.is_file() and not path.is_symlink():
            moved_ok = _give_to(path, settings, owner)
            moved, deleted = moved + moved_ok, deleted + (not moved_ok)
        else:
            path.unlink(missing_ok=True)
            deleted += path.suffix.lower() == ".pdf"
    if moved or deleted or curated:
        logger.info(
            "Uploads from before per-user stores: %d files moved to %s, %d deleted; %d of their passages "
            "removed from the curated store",
            moved,
            f"the local owner's own store (users/{user_key(owner)})" if owner else "nobody",
            deleted,
            curated,
        )
    return MigrationReport(moved, deleted, curated)


def _give_to(path: Path, settings: Settings, owner: str) -> bool:
    """Move the flat upload ``path`` into ``owner``'s folder and ingest it into their store; False when the
    ingest refused it (the file is then deleted, as any refused upload)."""
    from assistant.chat.uploads import _link_unique, ingest_upload, safe_name, user_uploads_dir
    from assistant.permissions import private_dir

    folder = private_dir(user_uploads_dir(settings, owner), top=settings.home)
    target = _link_unique(path, folder / safe_name(path.name))
    path.unlink()
    result = ingest_upload(target, settings, owner)
    if not result.ok:
        logger.warning("An upload from before per-user stores was not kept: %s", result.error)
        target.unlink(missing_ok=True)
    return result.ok


def _remove_from_curated(settings: Settings) -> int:
    """Remove the passages of old uploads from the curated store; returns how many were removed.

    Old uploads are the files whose docstore record's path lies in ``<home>/uploads/`` itself, and chunks marked
    ``uploaded``. The store's writer lock is not waited for: when a command-line ingest holds it, this is tried
    again at the next start (a warning says so).
    """
    from assistant.rag import store as st
    from assistant.rag.ingest import _remove_file, _stored_records
    from assistant.rag.lock import StoreLockedError, store_lock

    if not (settings.store_dir / "chroma.sqlite3").is_file():
        return 0
    flat = settings.uploads_dir.resolve()

    def old_uploads(collection, docstore) -> set[str]:
        names = {n for n, r in _stored_records(docstore).items() if Path(r.get("path", "/")).parent == flat}
        marked = collection.get(where={"uploaded": True}, include=["metadatas"])["metadatas"]
        return names | {str(m.get("file", "")) for m in marked}

    try:
        collection = st.open_collection(settings, client=st.open_client(settings, fresh=True))
    except st.StoreError:
        return 0
    if not old_uploads(collection, st.load_docstore(st.docstore_path(settings))):
        return 0
    try:
        with store_lock(settings, wait=False):
            collection = st.open_collection(settings, client=st.open_client(settings, fresh=True))
            docstore = st.load_docstore(st.docstore_path(settings))
            removed = sum(
                _remove_file(name, collection, docstore) for name in old_uploads(collection, docstore)
            )
            st.save_docstore(docstore, st.docstore_path(settings))
            if removed:
                st.bump_generation(collection)
    except StoreLockedError:
        logger.warning(
            "Old uploads are still in the curated store: its lock is held; removed at the next start"
        )
        return 0
    return removed
