"""Sentences of PDF passages: Punkt splitting and which pieces are quotable sentences (not headings, table rows,
references or cut-off fragments). Used to quote evidence (:mod:`assistant.chat.evidence`, whose module docstring
explains each rule) and to build inverse-cloze training pairs (:mod:`assistant.rag.pairs`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MIN_WORDS = 6
"""Shorter sentences are headings, labels or fragments."""
MAX_WORDS = 80
"""Longer "sentences" are run-on table text or lists that Punkt could not split; not quoted."""
MIN_LETTER_SHARE = 0.6
"""Share of letters among non-space characters below which a sentence is a table row or a reference list."""

_REFERENCE = re.compile(
    r"\bet al\b|\bdoi\b|https?://|www\.|\(\s*(19|20)\d{2}[a-z]?\s*\)|\b(19|20)\d{2}\s*;|\bISBN\b|\bvol\.\s*\d",
    re.IGNORECASE,
)
_CONTENTS = re.compile(
    r"^\d+\s+\d+(\.\d+)+\s|\s\.$|\.\s?\.\s?\."
)  # "92 1.5.4 Title ." lines of a contents page
_BULLET = re.compile(r"^[^\w(\"“‘'[]+")
_CLOSED = re.compile(r"[.!?:;)\]\"'”’]$")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _punkt():
    """NLTK Punkt with its trained English parameters (assistant.chat.evidence, step 1); loaded once (~1.6 s import)."""
    import importlib.util
    from pathlib import Path

    import nltk.data
    from nltk.tokenize.punkt import PunktTokenizer

    spec = importlib.util.find_spec("llama_index.core")
    if spec is not None and spec.origin:
        bundled = str(Path(spec.origin).parent / "_static" / "nltk_cache")
        if bundled not in nltk.data.path:
            nltk.data.path.append(bundled)  # nltk only opens files under its data path
    return PunktTokenizer("english")


def load_splitter() -> None:
    """Import NLTK (loading Punkt) and bm25s now: the chat does this while its models load, so the first
    question does not pay the ~2 s of imports."""
    import bm25s  # noqa: F401
    import Stemmer  # noqa: F401

    _punkt()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (Punkt, English), whitespace collapsed, leading bullet symbols (●, ■, -) removed,
    empty pieces dropped."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFC", text or "")).strip()
    pieces = (_BULLET.sub("", s).strip() for s in _punkt().tokenize(text)) if text else ()
    return [s for s in pieces if s]


def is_quotable(sentence: str, *, last: bool = False) -> bool:
    """False for fragments: too short or long, headings, table rows, references, mid-sentence starts, or
    (``last``) a passage's cut-off final piece. See the module docstring, step 2."""
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    if not any(w[:1].islower() for w in words) or sentence[:1].islower():
        return False
    visible = [c for c in sentence if not c.isspace()]
    if sum(c.isalpha() for c in visible) < MIN_LETTER_SHARE * len(visible):
        return False
    if _REFERENCE.search(sentence) or _CONTENTS.search(sentence):
        return False
    return not (last and not _CLOSED.search(sentence))
