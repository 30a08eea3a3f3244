"""The pieces of a long message the screen reads on their own: sentences, and clauses of run-on sentences.

A classifier that reads a long, calm message whole averages one alarming sentence away among the routine ones (mean
pooling), and it reads only the first :data:`.finetuned.MAX_SEQ_LENGTH` tokens. So a message longer than
:data:`LONG_MESSAGE_CHARS` is also read sentence by sentence, and a sentence longer than :data:`LONG_SENTENCE_CHARS`
(a run-on sentence, often typed without full stops) clause by clause, split where it joins unrelated things ("; ",
" but ", " and also ", " anyway ", a dash between spaces). A short message of ordinary sentences is read whole only:
there every word of context ("no fever, just ...", "... in 2015") stays with the sign it qualifies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LONG_MESSAGE_CHARS = 200  # a message longer than this is also read sentence by sentence
LONG_SENTENCE_CHARS = 150  # a sentence longer than this is also read clause by clause
MIN_WORDS = 3  # shorter pieces ("Thanks.", "Hi all") are not read alone

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n+\s*")
_CLAUSE_JOIN = re.compile(
    r";\s+|\s+(?:but|and also|also|anyway|oh and|btw|plus|as well as that)\s+|\s+[-\u2013\u2014]+\s+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Segment:
    """One piece of a message: ``text`` and its character ``start`` in the message."""

    text: str
    start: int


def split_spans(text: str, pattern: re.Pattern, offset: int = 0) -> list[Segment]:
    """``text`` cut at every match of ``pattern``, stripped, empty pieces dropped; starts are offset by ``offset``."""
    pieces, last = [], 0
    for m in [*pattern.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[last:end]
        if piece.strip():
            pieces.append(Segment(piece.strip(), offset + last + len(piece) - len(piece.lstrip())))
        last = m.end() if m else last
    return pieces


def sentences(text: str) -> list[Segment]:
    """The sentences of ``text`` (split after . ! ? and at line breaks), with their character offsets."""
    return split_spans(text, _SENTENCE_END)


def segments(text: str) -> list[Segment]:
    """The pieces of a message read on their own (see the module docstring); empty for a short message.

    Returns:
        The sentences of at least :data:`MIN_WORDS` words when the message is longer than
        :data:`LONG_MESSAGE_CHARS` and has more than one; then the clauses of each sentence longer than
        :data:`LONG_SENTENCE_CHARS`; in reading order per kind.
    """
    found = [s for s in sentences(text) if len(s.text.split()) >= MIN_WORDS]
    pieces = found if len(text) > LONG_MESSAGE_CHARS and len(found) > 1 else []
    return pieces + [
        c
        for s in sentences(text)
        if len(s.text) > LONG_SENTENCE_CHARS
        for c in split_spans(s.text, _CLAUSE_JOIN, s.start)
        if len(c.text.split()) >= MIN_WORDS and c.text != s.text
    ]


RECENT_TURNS = 3  # user turns the screen reads together (the current one and the two before)


@dataclass(frozen=True)
class ReadingPlan:
    """What the classifier reads for a conversation, in this order: the last turn whole, its :func:`segments`,
    then the recent turns joined (only when there is more than one). ``turns``: the recent turns read."""

    turns: tuple[str, ...]
    pieces: tuple[Segment, ...]

    @property
    def last(self) -> str:
        return self.turns[-1]

    @property
    def texts(self) -> list[str]:
        if not self.turns:
            return []
        joined = ["\n".join(self.turns)] if len(self.turns) > 1 else []
        return [self.last] + [p.text for p in self.pieces] + joined


def texts_to_read(turns: Sequence[str]) -> ReadingPlan:
    """The :class:`ReadingPlan` for a conversation's user turns (oldest first; the last is being answered).

    Earlier turns are read only inside the joined text: each was screened sentence by sentence when it was sent,
    so an alarm in an earlier turn that the last turn settles ("it was checked, she's fine now") is not raised
    again from that sentence alone.

    Returns:
        A plan with no texts when no turn has text.
    """
    recent = tuple(t.strip() for t in turns if t and t.strip())[-RECENT_TURNS:]
    if not recent:
        return ReadingPlan((), ())
    return ReadingPlan(recent, tuple(segments(recent[-1])))
