"""One thread for the chat process's torch work: model loading, query embeddings and generation.

Streaming needs ``generate`` off the caller's thread (the caller reads a ``TextIteratorStreamer``). Measured on
this 2-core CPU with bf16 weights (docs/results.md, chat latency): once a second Python thread has run torch work, decoding
slows in every thread — 21.9-23.6 tokens/s with all work on one thread, 16.5-18.6 after loading and retrieval ran
on another — and ``OMP_WAIT_POLICY`` / ``KMP_BLOCKTIME`` / ``GOMP_SPINCOUNT`` did not change it. So the chat keeps
all of it on one long-lived worker: :func:`run` calls a function there and waits; :func:`submit` starts one and
returns its ``Future``. Calls made from the worker itself run inline (no deadlock). Work is serialized, which a
single CPU model would do anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_NAME = "llama-md-torch"
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME)


def _inside() -> bool:
    return threading.current_thread().name.startswith(_NAME)


def submit(fn: Callable[..., T], *args, **kwargs) -> Future:
    """Run ``fn(*args, **kwargs)`` on the torch thread; returns its Future (already done when called from it)."""
    if _inside():
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the Future
            future.set_exception(exc)
        return future
    return _EXECUTOR.submit(fn, *args, **kwargs)


def run(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` on the torch thread and return its result (exceptions re-raised here)."""
    return submit(fn, *args, **kwargs).result()
