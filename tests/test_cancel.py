"""Cancelling real SmolLM2 generations: cancel(), a reader that leaves, a generation cancelled while queued on the
torch thread, the streamer timeout, per-stream stats, and an answer whose reader leaves (issue #15)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from assistant import torch_thread
from assistant.chat.generation import GenerationTimeoutError, Generator
from assistant.errors import LlamaMdError

LONG = [
    {
        "role": "user",
        "content": "Write a long story about a girl who walks through a forest to visit her grandmother.",
    }
]


@pytest.fixture(scope="module")
def gen(generator) -> Generator:
    model, tokenizer = generator
    return Generator(model, tokenizer, base_model="SmolLM2-135M-Instruct")


@contextmanager
def torch_thread_busy() -> Iterator[threading.Event]:
    """Hold the torch thread with a job until the yielded gate is set (always set on exit)."""
    entered, gate = threading.Event(), threading.Event()
    blocker = torch_thread.submit(lambda: (entered.set(), gate.wait(120)))
    assert entered.wait(60)
    try:
        yield gate
    finally:
        gate.set()
        blocker.result(60)


def wait_until_submitted(stream, timeout_s: float = 60) -> None:
    """``stream.wait(0)`` is False once its job waits on the (busy) torch thread."""
    deadline = time.monotonic() + timeout_s
    while stream.wait(0):
        assert time.monotonic() < deadline, "the stream never submitted its job"
        time.sleep(0.01)


def test_cancel_after_three_pieces_stops_within_a_token_and_frees_the_torch_thread(gen):
    stream = gen.stream(LONG, temperature=0, max_new_tokens=200)
    read = 0
    for _ in stream:  # pieces, one per token (empty while a word is incomplete)
        read += 1
        if read == 3:
            stream.cancel()
    assert stream.stats.cancelled and not stream.stats.stopped
    assert 3 <= stream.stats.new_tokens <= 3 + 2
    assert torch_thread.submit(lambda: "next job").result(timeout=30) == "next job"


def test_closing_the_iterator_early_cancels_the_generation(gen):
    stream = gen.stream(LONG, temperature=0, max_new_tokens=200)
    it = iter(stream)
    next(it)
    it.close()  # what Streamlit's rerun / stop does to st.write_stream's generator
    assert stream.cancel_event.is_set()
    assert stream.wait(60)
    assert stream.stats.cancelled and 1 <= stream.stats.new_tokens <= 1 + 2


def test_a_generation_cancelled_while_queued_never_runs(gen):
    stream = gen.stream(LONG, temperature=0, max_new_tokens=200)
    texts: list[str] = []
    with torch_thread_busy():
        reader = threading.Thread(target=lambda: texts.append(stream.text()))
        reader.start()
        wait_until_submitted(stream)
        stream.cancel()
    reader.join(60)
    assert texts == [""] and stream.wait(0)
    assert stream.stats.cancelled and stream.stats.new_tokens == 0 and stream.stats.prompt_tokens > 0


def test_a_generation_cancelled_before_it_is_read_renders_nothing(gen):
    cancel = threading.Event()
    stream = gen.stream(LONG, temperature=0, max_new_tokens=200, cancel=cancel)
    cancel.set()
    assert stream.text() == "" and stream.stats.cancelled
    assert stream.stats.new_tokens == 0 and stream.stats.prompt_tokens == 0


def test_a_streamer_timeout_cancels_and_says_what_happened(gen):
    stream = gen.stream(LONG, temperature=0, max_new_tokens=200, timeout_s=0.5)
    with torch_thread_busy():
        with pytest.raises(
            GenerationTimeoutError, match="wrote nothing for 0.5 s .* this answer was cancelled"
        ) as err:
            stream.text()
        assert isinstance(err.value, LlamaMdError) and stream.cancel_event.is_set()
    assert stream.wait(60) and stream.stats.cancelled and stream.stats.new_tokens == 0


def test_interleaved_streams_keep_their_own_stats(gen):
    messages = [{"role": "user", "content": "Name three fruits."}]
    short = gen.stream(messages, temperature=0, max_new_tokens=3)
    longer = gen.stream(messages, temperature=0, max_new_tokens=40)
    pieces = {"short": 0, "longer": 0}
    for a, b in itertools.zip_longest(short, longer):
        pieces["short"] += a is not None
        pieces["longer"] += b is not None
        if pieces["longer"] == 8:
            longer.cancel()
    assert 0 < short.stats.new_tokens <= 3 and not short.stats.cancelled
    assert longer.stats.cancelled and 8 <= longer.stats.new_tokens <= 10
    assert short.stats is not longer.stats and short.stats.total_s > 0 and longer.stats.total_s > 0
    assert not hasattr(gen, "last_stats")
