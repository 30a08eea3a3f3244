"""Training pairs for the medical retriever and re-ranker: question -> passage, with a mined hard negative.

The design follows MedCPT (Jin et al., Bioinformatics 2023: a contrastive bi-encoder, then a cross-encoder
re-ranker trained on its mined negatives) on the data that is here, three sources:

* ``medquad``: MedQuAD questions -> the first passage of their answer (``datasets/medquad.jsonl``; Ben Abacha &
  Demner-Fushman 2019), one question per (focus, question type);
* ``bioasq``: BioASQ questions -> a gold snippet (``eval/retrieval/bioasq_*``), the **training split only**:
  :func:`bioasq_split` keeps every fifth question (by a hash of its id) out for evaluation;
* ``ict``: the inverse cloze task of Lee, Chang & Toutanova (ACL 2019, "Latent Retrieval for Weakly Supervised
  Open Domain Question Answering") on the curated PDFs: a quotable sentence -> the rest of its chunk (the sentence
  removed), so the retriever learns the library's own wording without any question written about it.

Held out (:func:`held_out_questions`): the pregnancy page questions (sets 1-3), the BioASQ evaluation split, and
the MedQuAD q2a sample. Pairs whose question is one of them (by id, or by normalised text) or a near duplicate
(cosine >= :data:`NEAR_DUPLICATE` under the base embedder) are dropped before training.

Hard negatives (:func:`mine_negatives`): the base retriever (all-MiniLM-L6-v2) ranks the pool of passages of the
same source for each question (sentence-transformers' ``mine_hard_negatives``); the negative is the best-ranked
passage that is not the positive, comes from another document and does not contain the question's text (an ICT
sentence also sits in the overlapping neighbour chunk): a cheap form of the false-negative filtering of RocketQA
(Qu et al., NAACL 2021).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

BIOASQ = "eval/retrieval/bioasq_7b-11b_golden_questions_snippets.jsonl"
MEDQUAD = "datasets/medquad.jsonl"
MEDQUAD_SAMPLE = "eval/retrieval/medquad_q2a_sample500.jsonl"
EVAL_DATA = Path(__file__).resolve().parents[1] / "evaluation" / "data"
PAGE_SETS = ("pregnancy_questions.jsonl", "pregnancy_questions_2.jsonl", "pregnancy_questions_3.jsonl")
BIOASQ_HELDOUT_EVERY = 5
"""One BioASQ question in this many (by the sha1 of its id) is held out for evaluation."""
NEAR_DUPLICATE = 0.9
"""Cosine (base embedder) at or above which a training question counts as a copy of a held-out one."""
POSITIVE_CHARS = 1200
"""Answers and snippets are cut to about this many characters (~250 tokens, one stored chunk)."""
MIN_ICT_WORDS, MAX_ICT_WORDS = 8, 40
"""ICT query sentences: long enough to say something, short enough to read like a question."""
MIN_PROSE_SHARE = 0.5
"""An ICT chunk needs at least this share of quotable sentences (reference lists and tables have few)."""


class PairsError(LlamaMdError, ValueError):
    """Training data for the retriever is missing or malformed; the message names the file and the fix."""


@dataclass
class Pair:
    """One training example: ``query`` -> ``positive`` (and, once mined, a hard ``negative``).

    ``source`` is medquad | bioasq | ict; ``group`` identifies the positive's document, so negatives never come
    from the same answer, snippet set or page.
    """

    query: str
    positive: str
    source: str
    group: str
    negative: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(text: str) -> str:
    """Lowercase, letters and digits only, single spaces: what "the same question" means for de-duplication."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise PairsError(
            f"Missing {path}: the retriever's training data comes from the data folder (../shared)."
        )
    with path.open(encoding="utf-8") as fh:  # not splitlines(): snippets hold U+2028
        return [json.loads(line) for line in fh if line.strip()]


def bioasq_split(question_id: str) -> str:
    """ "eval" for every :data:`BIOASQ_HELDOUT_EVERY`-th BioASQ question (by the sha1 of its id), else "train"."""
    digest = int(hashlib.sha1(question_id.encode()).hexdigest(), 16)
    return "eval" if digest % BIOASQ_HELDOUT_EVERY == 0 else "train"


def bioasq_items(data_dir: Path, split: str) -> list[dict]:
    """BioASQ questions of one split: ``[{id, question, snippets: [text, ...]}]`` (questions without snippets out)."""
    rows = _read_jsonl(Path(data_dir) / BIOASQ)
    out = []
    for row in rows:
        snippets = [s["text"] for s in row.get("snippets", []) if s.get("text", "").strip()]
        if snippets and bioasq_split(row["id"]) == split:
            out.append({"id": row["id"], "question": row["question"], "snippets": snippets})
    return out


def held_out_questions(data_dir: Path | None) -> tuple[set[str], list[str]]:
    """``(ids, questions)`` of every evaluation set retrieval is reported on (module docstring)."""
    ids: set[str] = set()
    questions: list[str] = []
    for name in PAGE_SETS:
        path = EVAL_DATA / name
        if path.is_file():
            questions += [r["question"] for r in _read_jsonl(path)]
    if data_dir is not None and (Path(data_dir) / MEDQUAD_SAMPLE).is_file():
        for row in _read_jsonl(Path(data_dir) / MEDQUAD_SAMPLE):
            ids.add(row["qid"])
            questions.append(row["question"])
    if data_dir is not None and (Path(data_dir) / BIOASQ).is_file():
        for row in bioasq_items(data_dir, "eval"):
            ids.add(row["id"])
            questions.append(row["question"])
    return ids, questions


def _cut(text: str, limit: int = POSITIVE_CHARS) -> str:
    """``text`` with whitespace collapsed, cut at the last sentence end before ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("? "), head.rfind("! "))
    return head[: end + 1] if end > limit // 3 else head


def medquad_pairs(data_dir: Path, limit: int, seed: int, held_ids: set[str]) -> list[Pair]:
    """Up to ``limit`` MedQuAD question -> answer pairs, at most one per (focus, question type), sampled evenly
    over the source collections; held-out qids (``<collection no.>_<id>``) are left out."""
    from assistant.data import medquad_key

    by_collection: dict[str, list[Pair]] = {}
    seen = set()
    for row in _read_jsonl(Path(data_dir) / MEDQUAD):
        key = medquad_key(row)
        dedupe = (row.get("focus", "").lower(), row.get("qtype", ""))
        if key in held_ids or dedupe in seen or not row.get("answer", "").strip():
            continue
        seen.add(dedupe)
        pair = Pair(row["question"], _cut(row["answer"]), "medquad", f"mq:{row.get('focus', key).lower()}")
        by_collection.setdefault(row.get("collection", ""), []).append(pair)
    return _round_robin(by_collection, limit, seed)


def bioasq_pairs(data_dir: Path, limit: int, seed: int) -> list[Pair]:
    """Up to ``limit`` BioASQ training-split question -> gold snippet pairs (one snippet per question, the
    longest of its first three, which most often states the answer in full)."""
    rng = random.Random(seed)
    items = bioasq_items(data_dir, "train")
    rng.shuffle(items)
    pairs = []
    for item in items[:limit]:
        snippet = max(item["snippets"][:3], key=len)
        pairs.append(Pair(item["question"], _cut(snippet), "bioasq", f"bq:{item['id']}"))
    return pairs


def ict_pairs(chunks: Sequence[dict], limit: int, seed: int) -> list[Pair]:
    """Inverse-cloze pairs from stored-style chunks ``{text, file, page}``: a quotable sentence of the chunk ->
    the chunk without that sentence (Lee et al. 2019; module docstring). At most one pair per chunk."""
    from assistant.rag.sentences import is_quotable, split_sentences

    rng = random.Random(seed)
    order = list(range(len(chunks)))
    rng.shuffle(order)
    pairs = []
    for i in order:
        chunk = chunks[i]
        sentences = split_sentences(chunk["text"])
        choices = [
            s
            for j, s in enumerate(sentences)
            if is_quotable(s, last=j == len(sentences) - 1)
            and MIN_ICT_WORDS <= len(s.split()) <= MAX_ICT_WORDS
        ]
        if len(sentences) < 3 or not choices:
            continue
        sentence = rng.choice(choices)
        rest = " ".join(s for s in sentences if s != sentence)
        pairs.append(Pair(sentence, rest, "ict", f"ict:{chunk['file']}:{chunk['page']}"))
        if len(pairs) >= limit:
            break
    return pairs


def _round_robin(groups: dict[str, list[Pair]], limit: int, seed: int) -> list[Pair]:
    """Up to ``limit`` pairs taken in turn from each group (each shuffled), so no source dominates."""
    rng = random.Random(seed)
    queues = []
    for name in sorted(groups):
        items = list(groups[name])
        rng.shuffle(items)
        queues.append(items)
    out: list[Pair] = []
    while len(out) < limit and any(queues):
        for queue in queues:
            if queue and len(out) < limit:
                out.append(queue.pop())
    return out


def drop_held_out(pairs: list[Pair], questions: Sequence[str], embed) -> tuple[list[Pair], int]:
    """Pairs whose query is not a held-out question, neither by normalised text nor as a near duplicate.

    Args:
        pairs: candidate training pairs.
        questions: every held-out question (:func:`held_out_questions`).
        embed: ``callable(list[str]) -> (n, d)`` unit-length embeddings (the base embedder).

    Returns:
        ``(kept, dropped)``.
    """
    if not pairs or not questions:
        return pairs, 0
    exact = {normalise(q) for q in questions}
    held = np.asarray(embed(list(questions)), dtype=np.float32)
    queries = np.asarray(embed([p.query for p in pairs]), dtype=np.float32)
    nearest = (queries @ held.T).max(axis=1)
    kept = [
        p
        for p, sim in zip(pairs, nearest, strict=True)
        if sim < NEAR_DUPLICATE and normalise(p.query) not in exact
    ]
    return kept, len(pairs) - len(kept)


def mine_negatives(pairs: list[Pair], model, *, candidates: int = 10) -> list[Pair]:
    """Give every pair a hard negative from its own source, mined by ``model`` with sentence-transformers'
    ``util.mine_hard_negatives`` (module docstring); pairs with no acceptable candidate are dropped.

    Args:
        pairs: pairs with ``positive`` set; ``negative`` is filled in place.
        model: the current retriever, a SentenceTransformer.
        candidates: ranks searched per question (and negatives kept by the miner before filtering).

    Returns:
        The pairs that got a negative.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    out = []
    for source in sorted({p.source for p in pairs}):
        group = [p for p in pairs if p.source == source]
        owner: dict[str, set[str]] = {}
        for p in group:
            owner.setdefault(p.positive, set()).add(p.group)
        mined = mine_hard_negatives(
            Dataset.from_dict({"query": [p.query for p in group], "positive": [p.positive for p in group]}),
            model,
            range_max=candidates,
            num_negatives=candidates,
            output_format="n-tuple",
            batch_size=64,
            verbose=False,
        )
        by_query = {row["query"]: [v for k, v in row.items() if k.startswith("negative")] for row in mined}
        for pair in group:
            for text in by_query.get(pair.query, []):
                if pair.group in owner.get(text, ()) or pair.query.lower() in text.lower():
                    continue  # same document, or the ICT sentence itself: not a negative
                pair.negative = text
                out.append(pair)
                break
    logger.info("hard negatives mined for %d of %d pairs", len(out), len(pairs))
    return out
