"""The answer line: FIFO order across threads, positions, a bounded line that refuses politely, leaving frees a place."""

from __future__ import annotations

import threading

import pytest

from assistant.chat.queue import QueueFullError, RequestQueue
from assistant.errors import LlamaMdError


def test_positions_count_the_requests_ahead_and_move_up_as_others_leave():
    queue = RequestQueue(max_active=1, max_waiting=4)
    first, second, third = queue.join("a"), queue.join("b"), queue.join("c")
    assert [first.position, second.position, third.position] == [0, 1, 2]
    assert first.wait(0) and not second.wait(0.01)
    assert queue.snapshot().active == 1 and queue.snapshot().waiting == 2
    first.release()
    assert [first.position, second.position, third.position] == [None, 0, 1]
    assert second.wait(0) and second.active
    first.release()  # twice: nothing changes
    assert queue.snapshot().active == 1 and queue.snapshot().waiting == 1


def test_threads_get_their_slot_in_the_order_they_joined():
    queue = RequestQueue(max_active=1, max_waiting=8)
    holder = queue.join("holder")
    order: list[int] = []
    lock = threading.Lock()
    tickets = [queue.join(str(i)) for i in range(5)]  # joined in order 0..4, each waits in its own thread

    def serve(i: int) -> None:
        with tickets[i] as ticket:
            assert ticket.wait(30)
            with lock:
                order.append(i)
                assert queue.snapshot().active == 1  # never two at once with max_active=1

    threads = [threading.Thread(target=serve, args=(i,)) for i in reversed(range(5))]  # started in reverse
    for t in threads:
        t.start()
    holder.release()
    for t in threads:
        t.join(60)
    assert order == [0, 1, 2, 3, 4]
    assert queue.snapshot().active == 0 and queue.snapshot().waiting == 0


def test_two_slots_admit_two_at_once():
    queue = RequestQueue(max_active=2, max_waiting=1)
    a, b, c = queue.join(), queue.join(), queue.join()
    assert (a.position, b.position, c.position) == (0, 0, 1)


def test_a_full_line_refuses_with_a_sentence_and_leaving_frees_a_place():
    queue = RequestQueue(max_active=1, max_waiting=2)
    active, w1, w2 = queue.join(), queue.join(), queue.join()
    with pytest.raises(QueueFullError, match="2 answers are waiting already; try again in a minute") as err:
        queue.join("one too many")
    assert isinstance(err.value, LlamaMdError)
    assert queue.snapshot().waiting == 2  # the refused request left no trace
    w1.release()  # left the line (closed tab) without ever generating
    assert w2.position == 1 and active.position == 0
    late = queue.join("late")
    assert late.position == 2


def test_a_ticket_released_while_waiting_stops_waiting():
    queue = RequestQueue(max_active=1, max_waiting=1)
    queue.join()
    waiting = queue.join()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiting.wait(60)))
    thread.start()
    waiting.release()
    thread.join(30)
    assert result == [False] and queue.snapshot().waiting == 0


def test_bad_sizes_name_the_setting():
    with pytest.raises(ValueError, match="queue_max_waiting"):
        RequestQueue(max_active=0)
