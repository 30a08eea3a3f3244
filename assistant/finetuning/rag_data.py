"""RAG training pairs (``--task rag``): the chat's exact prompt with k numbered passages, the target citing the right one.

Retrieval-augmented fine-tuning, RAFT (Zhang et al. 2024, https://arxiv.org/abs/2403.10131): train on the question
plus a gold document among distractors, sometimes with the gold document left out, so the model learns to answer
from the passage that holds the answer, to ignore the others, and to say when none does. Here, per MedQuAD row:

* **gold passage**: the chunk that opens the row's own answer, chunked like the store chunks PDFs
  (:func:`assistant.rag.ingest.make_splitter`: llama-index ``SentenceSplitter``, ``chunk_size`` embedding-model
  tokens). MedQuAD answers open with the answer, so the first chunk holds it.
* **distractors**: the opening chunks of OTHER answers that BM25 (bm25s, the sparse half of the chat's hybrid
  retrieval) ranks highest for the question, i.e. hard negatives. BM25 over all ~16k answers indexes in seconds on
  2 CPU cores; embedding them with the project's embedder takes ~30 min there, for negatives of the same kind
  (same topic words). Answers with the same focus or the same text are skipped (MedQuAD repeats answers across
  collections, and another collection's copy of the gold answer would be a second gold passage).
* **k** passages, k drawn uniformly from ``top_k_range`` (3..5: the chat sends up to ``top_k`` = 5), the gold at a
  uniformly random position; each passage is ``format_passage`` of a MedQuAD "file" (``<source>_<qid>``, page 1)
  and the user turn is :func:`assistant.prompts.user_turn`, the function the chat's ``compose()`` calls.
* **target**: the first 1-3 sentences of the gold passage (at most ``max_target_words``), verbatim, then
  `` [n]`` with n the gold position (RAFT's answers quote the gold document; the chat's prompt asks for [n]).
* **abstain** examples (share ``abstain_fraction``, evenly spread over the shuffled rows; RAFT keeps the gold out
  of a share of examples): only distractors, target :data:`ABSTAIN_ANSWER`.

Rows that overlap any evaluation set are dropped first (:func:`drop_evaluation_overlap`) and every drop is counted.
"""

from __future__ import annotations

import ast
import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from assistant.data import Pair, medquad_key
from assistant.errors import LlamaMdError
from assistant.prompts import user_turn

logger = logging.getLogger(__name__)

ABSTAIN_ANSWER = "The library's passages do not cover this question."
"""Target of the abstain examples: one fixed, plain sentence. It means what the chat's no-support notice
(``assistant.chat.answer.NO_SUPPORT``) tells the reader when no passage supports an answer."""
TOP_K_RANGE = (3, 5)
"""k passages per prompt, inclusive; the chat retrieves ``top_k`` = 5 by default and sends those that fit."""
MAX_TARGET_WORDS = 80
"""Target length cap, words: a 135M model trained on 2 CPU cores gets short answers (the chat's median is 22)."""
NEAR_DUPLICATE_JACCARD = 0.8
"""Token Jaccard similarity at or above which a training question counts as an evaluation question. Tokens are
:func:`normalize`'s words minus bm25s's ``STOPWORDS_EN_PLUS`` (179 words, "what" included): on whole words MedQuAD's
templates ("What are the genetic changes related to X ?") reach 0.8 between different diseases."""
MAX_SENTENCES = 3
"""Sentences of the gold passage the target quotes, at most."""
NO_ANSWER_TEXT = "Human Phenotype Ontology provides the following list"
"""GARD's symptom answers (2,243 of MedQuAD's 16,407) open with this sentence and hold the symptoms in a table:
their opening answers nothing, so such rows are not used as gold (they still serve as distractors)."""
MIN_SENTENCE_WORDS = 4
"""A punkt piece shorter than this ("Dr.", "(e.g.") is joined to the next one."""

#: Evaluation sets under ``$LLAMA_MD_DATA_DIR/eval``: path -> (question fields, answer fields).
EVAL_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "retrieval/medquad_q2a_sample500.jsonl": (("question",), ()),
    "obgyn/medquad_pregnancy_keyword_subset.jsonl": (("question",), ("answer",)),
    "obgyn/mirage_obgyn_subset.jsonl": (("question",), ()),
    "kqa/kqa_questions_w_answers.jsonl": (("Question",), ("Free_form_answer",)),
    "liveqa_med2017/liveqa_med2017_test.jsonl": (
        ("message", "nist_paraphrase", "nlm_summary"),
        ("reference_answers",),
    ),
    "mirage/medqa.jsonl": (("question",), ()),
    "mirage/medmcqa.jsonl": (("question",), ()),
    "mirage/pubmedqa.jsonl": (("question",), ()),
    "mirage/bioasq.jsonl": (("question",), ()),
    "mirage/mmlu.jsonl": (("question",), ()),
}
#: The project's own question sets (``{"question", ...}`` per line).
PROJECT_EVAL_DIR = Path(__file__).resolve().parents[1] / "evaluation" / "data"


class RagDataError(LlamaMdError, ValueError):
    """The RAG data can't be built (no usable rows, too few distractors); the message says what to change."""


@dataclass(frozen=True)
class Passage:
    """A retrieval hit as the chat formats it (the fields ``format_passage`` reads)."""

    text: str
    file: str
    page: int = 1
    page_label: str = "1"


@dataclass
class EvalSet:
    """Texts of one evaluation set that training rows must not repeat."""

    name: str
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    medquad_ids: set[str] = field(default_factory=set)


@dataclass
class RagCounts:
    """What happened to the MedQuAD rows (``dropped`` is per evaluation set; a row may match several)."""

    rows: int = 0
    empty: int = 0
    overlap: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_by: dict[str, int] = field(default_factory=dict)
    no_answer_text: int = 0  # rows skipped as gold: empty opening, or GARD's symptom-table preamble
    pairs: int = 0
    abstain: int = 0
    gold_positions: dict[int, int] = field(default_factory=dict)
    k: dict[int, int] = field(default_factory=dict)


def normalize(text: str) -> str:
    """Lowercase, letters and digits only, single spaces: ``"What is (are) X ?"`` -> ``"what is are x"``."""
    return " ".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


def load_medquad(path: str | Path) -> list[dict]:
    """Rows of ``medquad.jsonl``: ``{id, question, answer, qtype, focus, source, url, collection}`` each.

    Raises:
        RagDataError: the file is missing or a line is not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise RagDataError(
            f"MedQuAD file {path} does not exist. Fix: --dataset PATH/medquad.jsonl, or set LLAMA_MD_DATA_DIR to the "
            "folder holding datasets/medquad.jsonl."
        )
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise RagDataError(f"{path} is not JSON lines ({exc}). Fix: give the medquad.jsonl file.") from exc


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _answer_texts(value) -> list[str]:
    """An answer field as texts: a string, or LiveQA's ``"[{'aid': ..., 'answer': ...}]"`` list."""
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
    if isinstance(value, list):
        return [v.get("answer", "") if isinstance(v, dict) else str(v) for v in value]
    return [value] if isinstance(value, str) else []


def load_eval_sets(data_dir: str | Path | None, project_dir: Path = PROJECT_EVAL_DIR) -> list[EvalSet]:
    """Every evaluation set found: :data:`EVAL_FILES` under ``<data_dir>/eval`` and ``project_dir/*.jsonl``.

    Missing files are skipped (and logged); the MedQuAD sample's ``gold_doc_id`` ``MQ_<qid>`` gives ``medquad_ids``
    and the pregnancy subset's rows give theirs via :func:`assistant.data.medquad_key`.
    """
    sets = []
    root = Path(data_dir) / "eval" if data_dir else None
    for rel, (qfields, afields) in EVAL_FILES.items():
        path = root / rel if root else None
        if path is None or not path.is_file():
            logger.info("Evaluation set %s not found; not deduplicated against", rel)
            continue
        found = EvalSet(rel)
        for row in _read_jsonl(path):
            found.questions += [row[f] for f in qfields if isinstance(row.get(f), str) and row[f].strip()]
            for f in afields:
                found.answers += [a for a in _answer_texts(row.get(f)) if a.strip()]
            if str(row.get("gold_doc_id", "")).startswith("MQ_"):
                found.medquad_ids.add(row["gold_doc_id"][3:])
            if "collection" in row and "id" in row:
                found.medquad_ids.add(medquad_key(row))
        sets.append(found)
    for path in sorted(Path(project_dir).glob("*.jsonl")):
        rows = _read_jsonl(path)
        questions = [r["question"] for r in rows if isinstance(r.get("question"), str)]
        if questions:
            sets.append(EvalSet(f"project/{path.name}", questions))
    return sets


def _content_tokens(text: str) -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(normalize(text).split()) - frozenset(STOPWORDS_EN_PLUS)


def _near_duplicate_index(questions: list[str]):
    """Prefix-filter index for token-Jaccard search (Chaudhuri et al. 2006, "A primitive operator for similarity
    joins"): two token sets with Jaccard >= t share a token among each one's first ``|x| - ceil(t|x|) + 1`` tokens
    in one global order. Returns ``matches(question) -> bool``."""
    import math

    sets = [_content_tokens(q) for q in questions]
    df = Counter(t for s in sets for t in s)
    rank = {t: (c, t) for t, c in df.items()}

    def prefix(tokens: frozenset) -> list[str]:
        ordered = sorted(tokens, key=lambda t: rank.get(t, (0, t)))
        return ordered[: len(ordered) - math.ceil(NEAR_DUPLICATE_JACCARD * len(ordered)) + 1]

    index: dict[str, list[int]] = {}
    for i, s in enumerate(sets):
        for t in prefix(s):
            index.setdefault(t, []).append(i)

    def matches(question: str) -> bool:
        tokens = _content_tokens(question)
        if not tokens:
            return False
        candidates = {i for t in prefix(tokens) for i in index.get(t, ())}
        return any(
            len(tokens & sets[i]) / len(tokens | sets[i]) >= NEAR_DUPLICATE_JACCARD for i in candidates
        )

    return matches


def drop_evaluation_overlap(
    rows: list[dict], eval_sets: list[EvalSet], counts: RagCounts | None = None
) -> list[dict]:
    """Drop MedQuAD rows that an evaluation set holds or nearly repeats.

    A row is dropped when its :func:`medquad_key` is an evaluation id, its normalised question or answer equals one
    of a set's (:func:`normalize`), or its question has token Jaccard >= :data:`NEAR_DUPLICATE_JACCARD` with one of a
    set's questions. The gold answers of the MedQuAD sample count as its answers (MedQuAD repeats them across
    collections under other ids).

    Returns:
        The kept rows, in order; ``counts.dropped[set name]`` / ``counts.dropped_by[reason]`` count the drops.
    """
    counts = counts if counts is not None else RagCounts()
    by_key = {medquad_key(r): r for r in rows if "collection" in r}
    checks = []
    for s in eval_sets:
        answers = {normalize(a) for a in s.answers}
        answers |= {normalize(by_key[i]["answer"]) for i in s.medquad_ids if i in by_key}
        questions = {normalize(q) for q in s.questions}
        checks.append((s, questions, answers - {""}, _near_duplicate_index(s.questions)))
    kept = []
    for row in rows:
        key = medquad_key(row) if "collection" in row else None
        q, a = normalize(row["question"]), normalize(row["answer"])
        hit = False
        for s, questions, answers, near in checks:
            reason = (
                "id"
                if key in s.medquad_ids
                else "question"
                if q in questions
                else "answer"
                if a in answers
                else "near_question"
                if near(row["question"])
                else None
            )
            if reason:
                counts.dropped[s.name] = counts.dropped.get(s.name, 0) + 1
                counts.dropped_by[reason] = counts.dropped_by.get(reason, 0) + 1
                hit = True
        if hit:
            counts.overlap += 1
        else:
            kept.append(row)
    return kept


def _clean(text: str) -> str:
    """MedQuAD answer text with its runs of spaces / line breaks collapsed and a leading "Key Points" dropped."""
    text = re.sub(r"\s+", " ", text or "").strip()
    return re.sub(r"^Key Points\s*-\s*", "", text)


def target_sentences(passage: str, max_words: int = MAX_TARGET_WORDS) -> str:
    """The first 1-:data:`MAX_SENTENCES` sentences of ``passage``, at most ``max_words`` words (a first sentence
    longer than that is cut at ``max_words``), after any leading sentences that restate a question. Sentences:
    llama-index's punkt splitter, with bullets (`` - ``) as breaks."""
    from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

    pieces = []
    for part in re.split(r"\s+-\s+", passage):
        pieces += [p.strip() for p in split_by_sentence_tokenizer()(part) if p.strip()]
    sentences: list[str] = []
    for piece in pieces:  # punkt splits after "Dr." / "(e.g."; re-join such stubs to what follows
        if sentences and len(sentences[-1].split()) < MIN_SENTENCE_WORDS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    while sentences and sentences[0].endswith("?"):  # GARD answers open by restating the question
        sentences.pop(0)
    chosen: list[str] = []
    for sentence in sentences[:MAX_SENTENCES]:
        if chosen and len(" ".join([*chosen, sentence]).split()) > max_words:
            break
        chosen.append(sentence)
    words = " ".join(chosen).split()
    return " ".join(words[:max_words])


class OpeningChunks:
    """The first chunk of a text, chunked like ingest chunks PDFs; cached per text.

    Args:
        chunk_size: chunk length in embedding-model tokens (the store uses 254, ``Settings.chunk_size``).
        settings: for the embedding model whose tokenizer counts the tokens (default: the bundled all-MiniLM-L6-v2).
    """

    def __init__(self, chunk_size: int, settings=None) -> None:
        from llama_index.core.node_parser import SentenceSplitter
        from transformers import AutoTokenizer

        from assistant.models import embedder_path

        tokenizer = AutoTokenizer.from_pretrained(embedder_path(None, settings))

        def count(text: str) -> list[int]:
            return tokenizer.encode(text, add_special_tokens=False, verbose=False)

        self.splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=0, tokenizer=count)
        self.max_chars = chunk_size * 12  # a chunk is never longer; splitting the rest is wasted work
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        if text not in self._cache:
            chunks = self.splitter.split_text(_clean(text)[: self.max_chars])
            self._cache[text] = chunks[0] if chunks else ""
        return self._cache[text]


def _stemmer():
    """English Snowball stemmer (PyStemmer), as the chat's BM25 uses; None when PyStemmer is not installed."""
    try:
        import Stemmer
    except ImportError:
        return None
    return Stemmer.Stemmer("english")


def _file_name(row: dict) -> str:
    return f"{row.get('source') or 'MedQuAD'}_{medquad_key(row)}" if "collection" in row else "MedQuAD"


def build_rag_pairs(
    rows: list[dict],
    n: int,
    *,
    chunk_size: int = 254,
    top_k_range: tuple[int, int] = TOP_K_RANGE,
    abstain_fraction: float = 0.15,
    seed: int = 0,
    eval_sets: list[EvalSet] | None = None,
    settings=None,
    counts: RagCounts | None = None,
) -> list[Pair]:
    """Up to ``n`` RAG training pairs from MedQuAD rows (see the module docstring).

    Args:
        rows: ``medquad.jsonl`` rows (``question``, ``answer``, ``focus``, ``source``, ``id``, ``collection``).
        n: pairs wanted; fewer come back when fewer rows survive deduplication.
        chunk_size: passage length, embedding-model tokens (the chat's store: 254).
        top_k_range: ``(lo, hi)`` passages per prompt, inclusive.
        abstain_fraction: share of pairs without the gold passage, target :data:`ABSTAIN_ANSWER`.
        seed: seeds row choice, k, gold position and abstain choice.
        eval_sets: evaluation sets to deduplicate against (:func:`load_eval_sets`); None: no deduplication.
        settings: llama-md settings (embedding model for the chunk tokenizer).
        counts: filled with what happened (drops per evaluation set, abstain share, gold positions, k).

    Returns:
        ``n`` or fewer :class:`Pair`: ``question`` = the chat's user turn (passages + question), ``answer`` = the
        target, ``system`` = "" (the run's system prompt applies).

    Raises:
        RagDataError: no usable rows, or fewer than ``top_k_range[1]`` distinct answers to draw distractors from.
    """
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    counts = counts if counts is not None else RagCounts()
    lo, hi = top_k_range
    counts.rows = len(rows)
    usable = [r for r in rows if str(r.get("question", "")).strip() and str(r.get("answer", "")).strip()]
    counts.empty = len(rows) - len(usable)
    if eval_sets:
        usable = drop_evaluation_overlap(usable, eval_sets, counts)
    # one index entry per distinct answer text (MedQuAD repeats answers across collections)
    first_row: dict[str, int] = {}
    for i, r in enumerate(usable):
        first_row.setdefault(normalize(r["answer"]), i)
    docs = sorted(first_row.values())
    if len(docs) <= hi:
        raise RagDataError(
            f"Only {len(docs)} distinct answers left after deduplication ({counts.overlap} rows overlap evaluation "
            f"sets, {counts.empty} empty); {hi + 1} or more are needed for distractors. Fix: give a larger "
            "--dataset (MedQuAD's medquad.jsonl)."
        )
    stemmer = _stemmer()

    def tokenize(texts: list[str]):
        return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)

    retriever = bm25s.BM25()
    retriever.index(tokenize([usable[i]["answer"] for i in docs]), show_progress=False)
    chunker = OpeningChunks(chunk_size, settings)
    rng = random.Random(seed)
    order = list(range(len(usable)))
    rng.shuffle(order)
    pairs: list[Pair] = []
    candidates = min(len(docs), hi * 8 + 8)
    for i in order:
        if len(pairs) >= n:
            break
        row = usable[i]
        gold = chunker(row["answer"])
        target = target_sentences(gold)
        if not gold or not target or NO_ANSWER_TEXT in gold:
            counts.no_answer_text += 1
            continue
        k = rng.randint(lo, hi)
        # every 1/abstain_fraction-th pair abstains: the share is exact, not a binomial draw around it
        abstain = int((len(pairs) + 1) * abstain_fraction) > int(len(pairs) * abstain_fraction)
        ranked, _ = retriever.retrieve(tokenize([row["question"]]), k=candidates, show_progress=False)
        focus, answer = normalize(row.get("focus", "")), normalize(row["answer"])
        distractors: list[Passage] = []
        for j in ranked[0]:
            other = usable[docs[int(j)]]
            if (focus and normalize(other.get("focus", "")) == focus) or normalize(other["answer"]) == answer:
                continue
            text = chunker(other["answer"])
            if text and all(text != p.text for p in distractors):
                distractors.append(Passage(text, _file_name(other)))
            if len(distractors) == (k if abstain else k - 1):
                break
        if len(distractors) < (k if abstain else k - 1):
            continue
        if abstain:
            passages, reply = distractors, ABSTAIN_ANSWER
            counts.abstain += 1
        else:
            position = rng.randint(1, k)
            passages = [
                *distractors[: position - 1],
                Passage(gold, _file_name(row)),
                *distractors[position - 1 :],
            ]
            reply = f"{target} [{position}]"
            counts.gold_positions[position] = counts.gold_positions.get(position, 0) + 1
        counts.k[k] = counts.k.get(k, 0) + 1
        question = re.sub(r"\s+\?$", "?", row["question"].strip())  # MedQuAD writes "What is (are) X ?"
        pairs.append(Pair(question=user_turn(question, passages), answer=reply))
    counts.pairs = len(pairs)
    if not pairs:
        raise RagDataError(
            f"No RAG pairs could be built from {counts.rows} rows ({counts.overlap} overlap evaluation sets). "
            "Fix: check --dataset is MedQuAD-like {question, answer, focus}."
        )
    logger.info(
        "RAG pairs: %d (%d abstain), k %s, gold positions %s; dropped as evaluation overlap: %s",
        counts.pairs,
        counts.abstain,
        dict(sorted(counts.k.items())),
        dict(sorted(counts.gold_positions.items())),
        counts.dropped,
    )
    return pairs
