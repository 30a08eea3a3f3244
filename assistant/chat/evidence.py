"""Quoted evidence: the sentences of the passages given to the model that answer the question, shown verbatim with
file and page under every answer.

    from assistant.chat.evidence import select_evidence
    quotes = select_evidence(question, composition.passages, embedder)  # best first, at most 3
    for q in quotes:
        print(f"From {q.title or q.file}, p. {q.page_label}: {q.sentence}")

Method, per answer:

1. **Sentences.** Each passage (numbered [n] in the prompt) is split with NLTK's Punkt tokenizer (Kiss & Strunk,
   Computational Linguistics 2006) using its trained English parameters. nltk's own data folders are empty on this
   machine and the chat runs offline, so the parameters are read from the ``punkt_tab`` copy that llama-index-core
   ships (``llama_index/core/_static/nltk_cache``; llama-index itself only builds an untrained Punkt from it).
   PDF line breaks are collapsed to single spaces first; the sentence is otherwise the passage's text.
2. **Fragments out.** A sentence is not quotable when it has fewer than :data:`MIN_WORDS` words or more than
   :data:`MAX_WORDS`, has no lower-case word (a heading), is less than :data:`MIN_LETTER_SHARE` letters (a table
   row), looks like a reference (``et al.``, ``doi``, a URL, a ``(2019)`` or ``2019;`` citation) or a contents
   line (``92 1.5.4 Title .``), starts in lower
   case (a chunk boundary or a split after an abbreviation) or is the passage's cut-off last piece (no closing
   punctuation). Sentences met twice (overlapping chunks, repeated guidance) are scored once.
3. **Scores**, in two stages. ``bm25``: BM25 (bm25s, Lucene variant, English stop words, Snowball stemming) of
   the question over these sentences only, divided by its maximum. First stage: the :data:`CANDIDATES` sentences
   with the best ``0.5 * bm25 + 0.5 * passage retrieval score``. Embedding every sentence of five passages
   (about 30 sentences, 1,100 tokens) took 0.9-1.1 s on this shared 2-core CPU, far over the 150 ms the evidence
   may add before the first token; on the first 40 pregnancy page questions the full method's best sentence was
   among these 8 candidates every time (40/40). Second stage, for the candidates: ``cosine``, the project's
   embedder, unit-length vectors, question vs sentence, and ``score = (1 - BM25_WEIGHT) * cosine + BM25_WEIGHT * bm25``: a convex combination, the
   fusion Bruch, Gai & Ingber (ACM TOIS 2023, "An Analysis of Fusion Functions for Hybrid Retrieval") found to beat
   reciprocal-rank fusion; ``BM25_WEIGHT = 0.3`` was set a priori, not tuned on any evaluation set.
4. **Pick.** By ``score``, best first, at most ``max_quotes``: a sentence is quoted when its cosine is at least
   :data:`MIN_COSINE`, its score is within :data:`QUOTE_MARGIN` of the best, and its cosine to every sentence
   already quoted is below :data:`DUPLICATE_COSINE` (near-duplicates out).

Cost: ``Answer.evidence_ms``; ``benchmarks/grounded_answer_bench.py`` prints its p50/p95 as time to evidence.
Not yet measured on an idle machine: on this 2-core CPU shared with a fine-tuning run (load average 7-9), the step
took p50 1.37 s, p95 2.44 s wall over 20 dev questions (top_k=5; a 13 ms question embedding took the same run's
load), so whether it meets the 150 ms budget is open; the first stage exists because embedding all ~30 sentences
cost 0.9-1.1 s there against 0.21 s for 8.
Sentence vectors are cached (:func:`embed`), so the groundedness score at the end of the answer
(:mod:`assistant.chat.groundedness`) does not embed the quoted candidates again.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from assistant import torch_thread

logger = logging.getLogger(__name__)

MIN_WORDS = 6
"""Shorter sentences are headings, labels or fragments."""
MAX_WORDS = 80
"""Longer "sentences" are run-on table text or lists that Punkt could not split; not quoted."""
MIN_LETTER_SHARE = 0.6
"""Share of letters among non-space characters below which a sentence is a table row or a reference list."""
BM25_WEIGHT = 0.3
"""Weight of the max-normalised BM25 score in the fused score (set a priori; see the module docstring)."""
MIN_COSINE = 0.3
"""A quote needs at least this cosine to the question (the same bar as ``Settings.min_score`` for passages)."""
QUOTE_MARGIN = 0.15
"""A second or third quote must score within this of the best one."""
DUPLICATE_COSINE = 0.9
"""A sentence this similar to one already quoted is a near-duplicate and skipped."""
CANDIDATES = 8
"""Sentences the lexical first stage hands to the embedder (module docstring, step 3)."""

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


@dataclass
class Evidence:
    """One quoted sentence. ``number`` is its passage's [n] marker in the prompt; ``page`` is 1-based.

    ``score`` is the fused score used for ranking (see the module docstring), ``cosine`` the sentence's cosine
    similarity to the question, both in [-1, 1] (in practice [0, 1]).
    """

    number: int
    file: str
    page: int
    page_label: str
    title: str
    sentence: str
    score: float
    cosine: float = 0.0
    uploaded: bool = False  # from the asking user's own upload, not the curated library

    def to_json(self) -> dict:
        """The CLI's ``--json`` form: ``{"file", "page", "page_label", "sentence", "score"}``."""
        data = asdict(self)
        data["score"] = round(self.score, 4)
        return {k: data[k] for k in ("file", "page", "page_label", "sentence", "score")}

    def citation(self) -> str:
        """``From <short title or file>, p. <label>: “<sentence>”``, the line shown under an answer."""
        source = f"your document {self.file}" if self.uploaded else (short_title(self.title) or self.file)
        return f"From {source}, p. {self.page_label or self.page}: “{self.sentence}”"


def short_title(title: str) -> str:
    """A document title cut before its subtitle or parenthesis, with its year: ``"WHO recommendations on maternal
    health: guidelines ... (2025; ISBN ...)"`` -> ``"WHO recommendations on maternal health (2025)"``."""
    head = re.split(r"\s*[:(]", title or "", maxsplit=1)[0].strip()
    year = re.search(r"\b(?:19|20)\d{2}\b", title or "")
    return f"{head} ({year.group()})" if head and year and year.group() not in head else head


@dataclass
class PassageSentences:
    """The sentences of the passages given to the model (module docstring, steps 1 and 2).

    Attributes:
        sentences: S sentences, whitespace collapsed, in passage order, each kept once.
        numbers: S passage markers [n] (1-based): the passage each sentence came from first.
        quotable: S flags, False for fragments.
    """

    sentences: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    quotable: list[bool] = field(default_factory=list)

    @classmethod
    def from_passages(cls, passages: Sequence) -> PassageSentences:
        """Split ``passages`` (``passages[i]`` is marker ``[i + 1]``; objects with ``text``). Pieces of fewer than
        three words are left out altogether: they neither quote nor support an answer sentence."""
        out, seen = cls(), set()
        for number, passage in enumerate(passages, 1):
            pieces = split_sentences(passage.text)
            for i, sentence in enumerate(pieces):
                key = sentence.casefold()
                if key in seen or len(sentence.split()) < 3:
                    continue
                seen.add(key)
                out.sentences.append(sentence)
                out.numbers.append(number)
                out.quotable.append(is_quotable(sentence, last=i == len(pieces) - 1))
        return out

    def of_passages(self, numbers: Sequence[int]) -> list[str]:
        """The sentences that came from the passages ``numbers`` (markers, 1-based)."""
        wanted = set(numbers)
        return [s for s, n in zip(self.sentences, self.numbers, strict=True) if n in wanted]


@lru_cache(maxsize=1)
def _punkt():
    """NLTK Punkt with its trained English parameters (module docstring, step 1); loaded once (~1.6 s import)."""
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


class _VectorCache:
    """Sentence -> unit vector, per embedding model, the most recent :data:`CACHE_SENTENCES` kept. The groundedness
    score at the end of an answer re-uses the vectors evidence selection computed before its first token. Shared by
    every chat session's thread, so each read and write holds a lock."""

    def __init__(self, size: int) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
            return vector

    def put(self, key, vector) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


CACHE_SENTENCES = 4096
_CACHE = _VectorCache(CACHE_SENTENCES)


def embed(texts: Sequence[str], embedder) -> np.ndarray:
    """Unit-length embeddings, shape ``(len(texts), d)`` float32 (d = 384 for all-MiniLM-L6-v2); the ones not
    cached are computed in one batch on the torch thread.

    ``embedder``: a SentenceTransformer (or the llama-index wrapper of one, whose ``.model`` is used).
    """
    model = getattr(embedder, "model", embedder)
    found = {t: v for t in dict.fromkeys(texts) if (v := _CACHE.get((id(model), t))) is not None}
    missing = [t for t in dict.fromkeys(texts) if t not in found]  # another session may evict meanwhile: the
    if missing:  # vectors returned are the ones read or computed here, not a second read of the cache
        vectors = torch_thread.run(
            model.encode,
            missing,
            batch_size=64,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        for text, vector in zip(missing, np.asarray(vectors, dtype=np.float32), strict=True):
            _CACHE.put((id(model), text), vector)
            found[text] = vector
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
    return np.stack([found[t] for t in texts])


def bm25_scores(question: str, sentences: Sequence[str]) -> np.ndarray:
    """BM25 of ``question`` over ``sentences`` (bm25s; English stop words, Snowball stemmer), shape ``(S,)``,
    divided by the maximum (all zeros when no word matches)."""
    import bm25s
    import Stemmer

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
    if not sentences:
        return np.zeros(0, dtype=np.float32)
    stemmer = Stemmer.Stemmer("english")
    corpus = bm25s.tokenize(list(sentences), stopwords="en", stemmer=stemmer, show_progress=False)
    index = bm25s.BM25()
    index.index(corpus, show_progress=False)
    query = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    scores = np.asarray(index.get_scores(query[0]), dtype=np.float32)  # unknown words score 0
    top = float(scores.max())
    return scores / top if top > 0 else np.zeros_like(scores)


def select_evidence(
    question: str,
    passages: Sequence,
    embedder,
    *,
    max_quotes: int = 3,
    candidates: int = CANDIDATES,
    sentences: PassageSentences | None = None,
) -> list[Evidence]:
    """The best 1 to ``max_quotes`` sentences of ``passages`` for ``question``, best first, verbatim.

    Args:
        question: the user's question (as composed, possibly trimmed).
        passages: the hits given to the model, ``passages[i]`` numbered ``[i + 1]`` (objects with ``text``,
            ``score``, ``file``, ``page``, ``page_label``, optionally ``title``).
        embedder: the project's SentenceTransformer (or its llama-index wrapper); runs on the torch thread.
        max_quotes: most sentences returned.
        candidates: sentences embedded after the lexical first stage (module docstring, step 3).
        sentences: the passages already split (:meth:`PassageSentences.from_passages`); split here when None.

    Returns:
        Evidence records, best first; empty when no sentence passes the bars (module docstring, step 4).
    """
    sentences = sentences if sentences is not None else PassageSentences.from_passages(passages)
    rows = [i for i, ok in enumerate(sentences.quotable) if ok]
    if not rows or max_quotes <= 0:
        return []
    texts = [sentences.sentences[i] for i in rows]
    lexical = bm25_scores(question, texts)
    retrieval = np.asarray([float(passages[sentences.numbers[i] - 1].score) for i in rows], dtype=np.float32)
    first = np.argsort(-(0.5 * lexical + 0.5 * retrieval), kind="stable")[:candidates]
    vectors = embed([question] + [texts[j] for j in first], embedder)
    cosine = vectors[1:] @ vectors[0]
    fused = (1 - BM25_WEIGHT) * cosine + BM25_WEIGHT * lexical[first]
    order = np.argsort(-fused, kind="stable")
    chosen: list[int] = []  # positions in ``first``
    for pos in order:
        if len(chosen) == max_quotes or (chosen and fused[pos] < fused[chosen[0]] - QUOTE_MARGIN):
            break
        if cosine[pos] < MIN_COSINE:
            continue
        if any(float(vectors[1 + pos] @ vectors[1 + c]) >= DUPLICATE_COSINE for c in chosen):
            continue
        chosen.append(int(pos))
    quotes = []
    for pos in chosen:
        i = rows[first[pos]]
        hit = passages[sentences.numbers[i] - 1]
        quotes.append(
            Evidence(
                number=sentences.numbers[i],
                file=hit.file,
                page=int(hit.page),
                page_label=str(hit.page_label or hit.page),
                title=str(getattr(hit, "title", "") or ""),
                sentence=sentences.sentences[i],
                score=float(fused[pos]),
                cosine=float(cosine[pos]),
                uploaded=bool(getattr(hit, "uploaded", False)),
            )
        )
    return quotes
