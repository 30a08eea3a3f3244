"""A bounded first-come, first-served line for answers, so one user can't stall everyone (issue #15).

The chat process has one torch thread (:mod:`assistant.torch_thread`): generations run one after another. Without
a line in front of it every question is submitted at once, a Streamlit rerun cannot take its place back, and a
long wait ends in the streamer's timeout. A :class:`RequestQueue` admits ``max_active`` requests at a time and
lets at most ``max_waiting`` wait; one more is refused with :class:`QueueFullError` ("try again in a minute")
instead of joining an ever longer line. One label (one user) may hold at most ``max_waiting_per_user`` of the
waiting places (issue #25), so one person's many tabs can't fill the line and lock everyone else out. The front-end shows a waiting request its place::

    ticket = assistant.queue.join(label=user_id)   # QueueFullError when the line is full
    with ticket:                                   # leaves the line / frees the slot however the block ends
        while not ticket.wait(timeout_s=1.0):
            show(f"{ticket.position} answers ahead of yours")
        stream = assistant.ask(question, history)  # compare mode: both generations under the same ticket
        ...

One ticket = one request (one user's turn), whatever number of generations it runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from assistant.config import ConfigError
from assistant.errors import LlamaMdError


class QueueFullError(LlamaMdError):
    """The line of answers waiting for the generator is full (for everyone, or for this user); the message says to
    try again shortly."""


@dataclass(frozen=True)
class QueueSnapshot:
    """How busy the generator is at one moment, for a status line."""

    active: int
    """Requests holding a slot (generating or about to)."""
    waiting: int
    """Requests in line for a slot."""


class Ticket:
    """One request's place in a :class:`RequestQueue`; made by :meth:`RequestQueue.join`.

    Use it as a context manager (or call :meth:`release` in a ``finally``) so a closed tab or a Streamlit rerun
    gives its place back.
    """

    def __init__(self, queue: RequestQueue, label: str) -> None:
        self._queue, self.label = queue, label

    @property
    def position(self) -> int | None:
        """0 while active (it may generate now); k >= 1 while waiting, k - 1 requests ahead of it in line
        (1 = next to get a slot); None once released."""
        return self._queue._position(self)

    @property
    def active(self) -> bool:
        """True while this ticket holds a slot."""
        return self.position == 0

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until this ticket holds a slot or ``timeout_s`` seconds have passed (None = no limit).

        Returns:
            True once active (at once when it already is); False on timeout or when the ticket was released.
        """
        return self._queue._wait(self, timeout_s)

    def release(self) -> None:
        """Free the slot (active) or leave the line (waiting). Safe to call more than once."""
        self._queue._release(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Ticket(label={self.label!r})"


class RequestQueue:
    """Thread-safe FIFO admission: ``max_active`` requests generate at once, at most ``max_waiting`` wait.

    Args:
        max_active: requests allowed to generate at the same time (1: the single torch thread runs one
            generation at a time anyway).
        max_waiting: requests allowed to wait for a slot; :meth:`join` refuses the next one
            (``settings.queue_max_waiting``).
        max_waiting_per_user: requests with one (non-empty) label allowed to wait at once
            (``settings.queue_max_waiting_per_user``); None = no per-label limit.

    Raises:
        ConfigError: ``max_active`` < 1, ``max_waiting`` < 0 or ``max_waiting_per_user`` < 1 (a ``ValueError``).
    """

    def __init__(
        self, max_active: int = 1, max_waiting: int = 16, max_waiting_per_user: int | None = None
    ) -> None:
        if (
            max_active < 1
            or max_waiting < 0
            or (max_waiting_per_user is not None and max_waiting_per_user < 1)
        ):
            raise ConfigError(
                f"RequestQueue needs max_active >= 1, max_waiting >= 0 and max_waiting_per_user >= 1, got "
                f"{max_active}, {max_waiting} and {max_waiting_per_user} (settings queue_max_waiting and "
                "queue_max_waiting_per_user: llama-md.toml, or LLAMA_MD_QUEUE_MAX_WAITING[_PER_USER])"
            )
        self.max_active, self.max_waiting = max_active, max_waiting
        self.max_waiting_per_user = max_waiting_per_user
        self._cond = threading.Condition()
        self._active: list[Ticket] = []
        self._waiting: deque[Ticket] = deque()

    def join(self, label: str = "") -> Ticket:
        """Take a place at the end of the line (or a free slot at once when nobody waits).

        Args:
            label: who asks (a user id): at most ``max_waiting_per_user`` tickets of one label wait at once; ""
                counts for nobody.

        Raises:
            QueueFullError: ``max_waiting`` requests are already waiting, or ``max_waiting_per_user`` of ``label``.
        """
        with self._cond:
            ticket = Ticket(self, label)
            if not self._waiting and len(self._active) < self.max_active:
                self._active.append(ticket)
                return ticket
            mine = sum(t.label == label for t in self._waiting) if label else 0
            if self.max_waiting_per_user is not None and mine >= self.max_waiting_per_user:
                raise QueueFullError(
                    f"You have {mine} question{'' if mine == 1 else 's'} waiting for the model already; ask again "
                    "once one of them is answered."
                )
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(
                    f"The assistant is busy: {len(self._waiting)} answers are waiting already; "
                    "try again in a minute."
                )
            self._waiting.append(ticket)
            return ticket

    def snapshot(self) -> QueueSnapshot:
        """Counts of active and waiting requests now."""
        with self._cond:
            return QueueSnapshot(active=len(self._active), waiting=len(self._waiting))

    def _position(self, ticket: Ticket) -> int | None:
        with self._cond:
            if ticket in self._active:
                return 0
            return self._waiting.index(ticket) + 1 if ticket in self._waiting else None

    def _wait(self, ticket: Ticket, timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while ticket not in self._active:
                if ticket not in self._waiting:
                    return False  # released while waiting
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket in self._active:
                self._active.remove(ticket)
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
            else:
                return
            while self._waiting and len(self._active) < self.max_active:
                self._active.append(self._waiting.popleft())
            self._cond.notify_all()
