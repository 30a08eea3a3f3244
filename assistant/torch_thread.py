"""One thread for the chat process's torch work: model loading, query embeddings and generation.

Streaming needs ``generate`` off the caller's thread (the caller reads a ``TextIteratorStreamer``). Measured on
this 2-core CPU with bf16 weights (docs/results.md, chat latency): once a second Python thread has run torch work, decoding
slows in every thread — 21.9-23.6 tokens/s with all work on one thread, 16.5-18.6 after loading and retrieval ran
on another — and ``OMP_WAIT_POLICY`` / ``KMP_BLOCKTIME`` / ``GOMP_SPINCOUNT`` did not change it. So the chat keeps
all of it on one long-lived worker: :func:`run` calls a function there and waits; :func:`submit` starts one and
returns its ``Future``. Calls made from the worker itself run inline (no deadlock). Work is serialized, which a
single CPU model would do anyway.

The one exception is :func:`submit_load`: loading a model for a swap (``Assistant.swap_generator``) takes seconds to
minutes, and on this thread it would stall every queued answer and query embedding for that long. It runs on a
second, loader thread instead. The trade-off is the measurement above: once that thread has run torch work,
decoding in the chat is ~20 % slower for the rest of the process. A swap is rare (an operator picks a new adapter)
and a restart restores full speed; answers that never wait behind a load matter more here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_NAME = "llama-md-torch"
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_NAME)
_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-md-loader")


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


def submit_load(fn: Callable[..., T], *args, **kwargs) -> Future:
    """Run ``fn(*args, **kwargs)`` (a model load) on the loader thread, off the torch thread's line; returns its
    Future. Loads run one at a time. See the module docstring for what a second torch thread costs."""
    return _LOADER.submit(fn, *args, **kwargs)
