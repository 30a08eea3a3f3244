"""One writer per store: an exclusive file lock beside the store, held by every ingest (CLI, upload, --rebuild).

The lock is a ``filelock.FileLock`` on ``<home>/store/<collection>.lock`` (for a Chroma server:
``<home>/store/<host>_<port>_<collection>.lock``, beside that server's docstore), so two writers on one machine
take turns instead of overwriting each other's docstore records. A second writer waits, logging who holds the lock,
or with ``wait=False`` (``--no-wait``) fails at once with :class:`StoreLockedError`. The holder writes its pid, host
and command into ``<lock>.holder`` so the message can name it. Readers never take the lock: they notice a changed
store through its generation counter (:func:`assistant.rag.store.store_generation`).

    with store_lock(settings):
        ...  # load the docstore, write chunks, save the docstore
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from assistant.config import Settings
from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

WAIT_LOG_EVERY_S = 30.0  # how often a waiting writer repeats who holds the lock


class StoreLockedError(LlamaMdError, RuntimeError):
    """Another writer holds the store's lock and this one was told not to wait (``--no-wait``)."""


def lock_path(settings: Settings, chroma_url: str | None = None) -> Path:
    """The lock file of the settings' collection (see the module docstring)."""
    if chroma_url:
        url = urlparse(chroma_url)
        return settings.store_dir / f"{url.hostname}_{url.port}_{settings.collection}.lock"
    return settings.store_dir / f"{settings.collection}.lock"


def describe_holder(path: Path) -> str:
    """``pid 123 on host (command)`` from ``<lock>.holder``, or ``an unknown process`` when it can't be read."""
    try:
        info = json.loads(path.with_name(path.name + ".holder").read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


@contextlib.contextmanager
def store_lock(settings: Settings, chroma_url: str | None = None, *, wait: bool = True) -> Iterator[Path]:
    """Hold the store's exclusive writer lock for the body of the ``with``; yields the lock file's path.

    Args:
        settings: ``store_dir`` and ``collection`` name the lock.
        chroma_url: a Chroma server's URL (one lock per server and collection).
        wait: when another writer holds it, wait (logging the holder every ``WAIT_LOG_EVERY_S`` s); False: raise.

    Raises:
        StoreLockedError: ``wait`` is False and another writer holds the lock; names the lock file and holder.
    """
    from filelock import FileLock, Timeout

    path = lock_path(settings, chroma_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), thread_local=False, is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = describe_holder(path)
        if not wait:
            raise StoreLockedError(
                f"Another writer is using the store: {path} is held by {holder}. Fix: wait for it to finish "
                "and run again, or drop --no-wait to queue behind it. If no such process is running, the lock is "
                "free: run again."
            ) from None
        logger.warning("Waiting for the store's writer lock %s, held by %s", path, holder)
        while True:
            try:
                lock.acquire(timeout=WAIT_LOG_EVERY_S)
                break
            except Timeout:
                logger.warning("Still waiting for %s, held by %s", path, describe_holder(path))
    holder_file = path.with_name(path.name + ".holder")
    try:
        holder_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "command": " ".join(sys.argv)[:200] or "python",
                    "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            ),
            encoding="utf-8",
        )
        yield path
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()
