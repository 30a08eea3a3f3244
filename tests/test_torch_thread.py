"""The chat's single torch thread: work runs there, nested calls don't deadlock, errors reach the caller."""

from __future__ import annotations

import threading

import pytest

from assistant import torch_thread


def thread_name() -> str:
    return threading.current_thread().name


def test_work_runs_on_one_named_thread_and_nested_calls_run_inline():
    first = torch_thread.run(thread_name)
    assert first.startswith("llama-md-torch") and first != thread_name()
    assert torch_thread.run(lambda: torch_thread.run(thread_name)) == first == torch_thread.run(thread_name)


def test_an_error_on_the_torch_thread_is_raised_in_the_caller():
    def fail():
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        torch_thread.run(fail)
    with pytest.raises(ValueError, match="bad input"):
        torch_thread.run(lambda: torch_thread.submit(fail).result())
