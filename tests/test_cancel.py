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


def test_close_from_another_thread_while_a_read_is_in_progress_cancels_it(gen):
    stream = gen.stream(LONG, temperature=0, max_new_tokens=200)
    pieces: list[str] = []
    reader = threading.Thread(target=lambda: pieces.extend(stream))
    reader.start()
    deadline = time.monotonic() + 120
    while len(pieces) < 2:
        assert time.monotonic() < deadline and reader.is_alive(), "no text arrived"
        time.sleep(0.005)
    read = len(pieces)
    stream.close()  # a Streamlit session tearing down from another thread: no "generator already executing"
    reader.join(60)
    assert not reader.is_alive() and stream.stats.cancelled and stream.stats.new_tokens <= read + 3


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
    unread = gen.stream(LONG, temperature=0, max_new_tokens=200)
    unread.close()
    assert unread.stats.cancelled and unread.wait(0) and list(unread) == []


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


# The answer path ------------------------------------------------------------------------------------------

# Not LONG: the red-flag screen took the forest-walk story for suicide risk and prefixed a crisis notice.
STORY = "Describe a healthy breakfast in detail."


@pytest.fixture(scope="module")
def bot(settings, gen):
    from assistant.chat.answer import Assistant

    return Assistant(settings, gen)


def test_an_answer_closed_early_cancels_its_generation(bot):
    stream = bot.ask(STORY, use_rag=False, temperature=0, max_new_tokens=200)
    it = iter(stream)
    next(it)
    it.close()
    assert stream.generation.wait(60)
    assert stream.generation.stats.cancelled and stream.generation.stats.new_tokens <= 1 + 2


def test_ask_passes_a_cancel_event_and_the_answer_says_it_was_cancelled(bot):
    cancel = threading.Event()
    stream = bot.ask(STORY, use_rag=False, temperature=0, max_new_tokens=200, cancel=cancel)
    for read, _ in enumerate(stream, 1):
        if read == 2:
            cancel.set()
    answer = stream.answer
    assert "cancelled" in answer.flags and 2 <= answer.new_tokens <= 2 + 2 and answer.text


def test_one_queue_per_assistant_sized_by_the_settings(bot, settings):
    assert bot.queue.max_waiting == settings.queue_max_waiting and bot.queue.max_active == 1


def test_a_swap_loads_off_the_torch_thread_and_answers_in_flight_keep_their_generator(bot, gen):
    stream = bot.ask(STORY, use_rag=False, temperature=0, max_new_tokens=6)
    it = iter(stream)
    first = next(it)
    with torch_thread_busy():  # queued answers would wait here; the load must not
        new = bot.swap_generator(None).result(timeout=300)
    assert bot.generator is new and new is not gen and new.model is not gen.model
    rest = "".join(it)
    assert (first + rest).strip() == stream.answer.generated_text and stream.answer.new_tokens == 6
    bot.generator = gen  # the module's other tests use the bundled one


def test_a_failed_swap_keeps_the_generator_and_says_why(bot, tmp_path):
    old = bot.generator
    with pytest.raises(LlamaMdError):
        bot.swap_generator(tmp_path / "no-such-run").result(timeout=60)
    assert bot.generator is old
