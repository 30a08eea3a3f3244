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

**With the re-ranker** (``settings.rerank``; :mod:`assistant.rag.rerank`), steps 3 and 4 change: the cross-encoder
reads the question with each of the first :data:`RERANK_SENTENCES` candidates of the lexical first stage and gives
the probability that the sentence answers it (``score``); the hand-set fusion of cosine and BM25 is not used. A
sentence is quoted when its probability is at least :data:`MIN_RELEVANCE` and within :data:`RELEVANCE_MARGIN` of the
best, near-duplicates out as above. Both bars were set a priori (0.5 is the loss's decision boundary), not tuned on
an evaluation set. A word-overlap scorer rewards sentences that repeat the question ("... in the second or third
trimester ..."); the cross-encoder was trained to tell a passage that answers from one that shares words.

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
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from assistant import torch_thread
from assistant.rag.sentences import (  # noqa: F401 - re-exported: the evidence step's own vocabulary
    MAX_WORDS,
    MIN_LETTER_SHARE,
    MIN_WORDS,
    is_quotable,
    load_splitter,
    split_sentences,
)

logger = logging.getLogger(__name__)

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
RERANK_SENTENCES = 24
"""Sentences the lexical first stage hands to the re-ranker (module docstring, "with the re-ranker")."""
MIN_RELEVANCE = 0.5
"""With the re-ranker: a quote's probability of answering the question must be at least this."""
RELEVANCE_MARGIN = 0.25
"""With the re-ranker: a second or third quote must be within this of the best one's probability."""


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
    reranker=None,
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
        reranker: a :class:`assistant.rag.rerank.Reranker` to score the sentences (module docstring); None: the
            fused cosine and BM25 score.

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
    first = np.argsort(-(0.5 * lexical + 0.5 * retrieval), kind="stable")
    if reranker is not None:
        first = first[:RERANK_SENTENCES]
        score = reranker.scores(question, [texts[j] for j in first])
        order = [int(k) for k in np.argsort(-score, kind="stable") if score[k] >= MIN_RELEVANCE]
        order = (
            [k for k in order if score[k] >= score[order[0]] - RELEVANCE_MARGIN][: 2 * max_quotes]
            if order
            else []
        )
        vectors = embed([question] + [texts[first[k]] for k in order], embedder)
        picked = _distinct(vectors, max_quotes)
        chosen = [(order[k], float(score[order[k]]), float(vectors[1 + k] @ vectors[0])) for k in picked]
    else:
        first = first[:candidates]
        vectors = embed([question] + [texts[j] for j in first], embedder)
        cosine = vectors[1:] @ vectors[0]
        fused = (1 - BM25_WEIGHT) * cosine + BM25_WEIGHT * lexical[first]
        order = [int(k) for k in np.argsort(-fused, kind="stable") if cosine[k] >= MIN_COSINE]
        order = [k for k in order if fused[k] >= fused[order[0]] - QUOTE_MARGIN]
        kept = _distinct(np.concatenate([vectors[:1], vectors[1:][order]]), max_quotes) if order else []
        chosen = [(order[k], float(fused[order[k]]), float(cosine[order[k]])) for k in kept]
    quotes = []
    for pos, value, cos in chosen:
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
                score=value,
                cosine=cos,
                uploaded=bool(getattr(hit, "uploaded", False)),
            )
        )
    return quotes


def _distinct(vectors: np.ndarray, limit: int) -> list[int]:
    """Indices (into ``vectors[1:]``, already in preference order) of up to ``limit`` sentences whose cosine to
    every one kept before is below :data:`DUPLICATE_COSINE`; ``vectors[0]`` is the question's."""
    kept: list[int] = []
    for k in range(len(vectors) - 1):
        if len(kept) == limit:
            break
        if all(float(vectors[1 + k] @ vectors[1 + c]) < DUPLICATE_COSINE for c in kept):
            kept.append(k)
    return kept
