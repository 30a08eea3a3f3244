"""Retrieval suite: recall@k and MRR@5 of the project's Retriever, dense, hybrid and convex.

Two sets, both variant-independent (retrieval does not depend on the adapter), one column per retrieval mode:

- 49 questions written about single pages of the pregnancy corpus (``data/pregnancy_questions.jsonl``:
  ``{question, file, page}``) against the store in ``$LLAMA_MD_HOME/store``; found at k = a chunk of the gold page
  among the first k hits;
- MedQuAD question -> answer: the 500 sample questions' gold answers (quick; plus all other MedQuAD answers in
  full) chunked and embedded like the PDFs by :func:`build_medquad` into a store under
  ``<home>/eval/medquad-store``, built once and reused; found = a chunk of the gold answer among the first k.

:func:`score` is also what ``benchmarks/retrieval_bench.py`` prints (with latency), see docs/results.md.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.data import medquad_key
from assistant.evaluation.suites import SETS

logger = logging.getLogger(__name__)

MODES = ("dense", "hybrid", "convex")  # assistant.rag.retrieve.MODES
METRIC_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@5")
KS = (1, 5, 10)
QUESTIONS = Path(__file__).resolve().parent / "data" / "pregnancy_questions.jsonl"


def score(retriever, items: list[tuple[str, object]], key) -> dict:
    """recall@k, MRR@5 and latency of ``retriever`` on ``items``.

    Args:
        retriever: anything with ``retrieve(question, top_k) -> list of hits``.
        items: ``[(question, gold)]``; ``gold`` is one value or a frozenset of values that each count as right.
        key: ``key(hit)`` -> a value comparable with ``gold`` (e.g. ``(file, page)``).

    Returns:
        ``recall@1/5/10`` and ``mrr@5`` (reciprocal rank of the first right hit within 5, else 0) in [0, 1],
        ``p50_ms`` / ``p95_ms`` wall time per query (query embedding included), ``n`` and the ``misses``.
    """
    ranks, latencies, misses = [], [], []
    for question, gold in items:
        started = time.perf_counter()
        hits = retriever.retrieve(question, top_k=max(KS))
        latencies.append((time.perf_counter() - started) * 1000)
        keys = [key(h) for h in hits]
        right = [k in gold if isinstance(gold, frozenset) else k == gold for k in keys]
        rank = right.index(True) + 1 if any(right) else None
        ranks.append(rank)
        if rank is None or rank > 5:
            misses.append(
                {
                    "question": question,
                    "gold": sorted(gold) if isinstance(gold, frozenset) else gold,
                    "rank": rank,
                    "top1": keys[0] if keys else None,
                }
            )
    n = len(items)
    out = {f"recall@{k}": round(sum(1 for r in ranks if r and r <= k) / n, 3) for k in KS}
    out["mrr@5"] = round(sum(1 / r for r in ranks if r and r <= 5) / n, 3)
    out["p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
    out["p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
    out["n"] = n
    out["misses"] = misses
    return out


QUESTIONS_2 = QUESTIONS.with_name("pregnancy_questions_2.jsonl")
"""68 page questions written in a separate pass without running retrieval (see its .md): reported, never tuned on."""


def pregnancy_items(path: Path = QUESTIONS) -> list[tuple[str, tuple[str, int]]]:
    """Page questions (``{question, file, page}`` per line) as ``[(question, (file, page))]``."""
    return [(r["question"], (r["file"], r["page"])) for r in _read(path)]


def build_medquad(settings: Settings, data_dir: Path, distractors: int, seed: int) -> list[tuple[str, str]]:
    """Ingest the 500 sample questions' gold answers plus ``distractors`` other MedQuAD answers into
    ``settings.collection`` (rebuilt), chunked and embedded like the PDFs.

    Returns:
        ``[(question, qid)]`` for the 500 sample questions; a hit's ``file`` is the qid of its answer.
    """
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.models import load_index_embedder
    from assistant.rag import store as st
    from assistant.rag.ingest import make_splitter

    sample = _read(data_dir / "eval/retrieval/medquad_q2a_sample500.jsonl")
    answers = {}
    with (data_dir / "datasets/medquad.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            answers[medquad_key(row)] = row["answer"]
    gold = {s["qid"] for s in sample}
    missing = gold - answers.keys()
    assert not missing, f"{len(missing)} gold ids not found in medquad.jsonl, e.g. {sorted(missing)[:3]}"
    others = sorted(answers.keys() - gold)
    chosen = sorted(gold) + random.Random(seed).sample(others, min(distractors, len(others)))
    embed = load_index_embedder(None, settings)
    client = st.open_client(settings)
    st.drop_collection(settings, client=client)
    collection = st.open_collection(settings, create_dim=384, client=client)
    docs = [Document(id_=i, text=answers[i], metadata={"file": i, "page": 1}) for i in chosen]
    for doc in docs:
        doc.excluded_embed_metadata_keys = doc.excluded_llm_metadata_keys = ["file", "page"]
    started = time.perf_counter()
    IngestionPipeline(
        transformations=[make_splitter(settings, embed), embed],
        vector_store=ChromaVectorStore(chroma_collection=collection),
    ).run(documents=docs, show_progress=True)
    logger.warning(
        "MedQuAD store: %d answers, %d chunks in %.0f s",
        len(docs),
        collection.count(),
        time.perf_counter() - started,
    )
    return [(s["question"], s["qid"]) for s in sample]


def _result(name: str, n: int, by_mode: dict[str, dict], note: str, default_mode: str) -> dict:
    info = SETS[name]
    columns = [f"{mode} (answer path)" if mode == default_mode else mode for mode in by_mode]
    return {
        "name": name,
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": n,
        "columns": columns,
        "metrics": {
            m: {c: r[m] for c, r in zip(columns, by_mode.values(), strict=True)} for m in METRIC_KEYS
        },
        "baselines": {},
        "items": {c: r.get("misses", []) for c, r in zip(columns, by_mode.values(), strict=True)},
        "notes": [note],
    }


def _skipped(name: str, why: str) -> dict:
    info = SETS[name]
    logger.warning("Retrieval set %s skipped: %s", name, why)
    return {
        "name": name,
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": 0,
        "columns": [],
        "metrics": {},
        "baselines": {},
        "items": {},
        "notes": [f"skipped: {why}"],
    }


def evaluate_retrieval(bot, cfg, settings: Settings, embedder=None) -> list[dict]:
    """Pregnancy questions (needs the store) and MedQuAD question -> answer (needs ``settings.data_dir``)."""
    from assistant.rag.retrieve import DEFAULT_MODE, Retriever

    default = getattr(bot.retriever, "mode", DEFAULT_MODE)
    out = []
    if bot.retriever is None:
        out.append(_skipped("pregnancy_questions", f"no store in {settings.store_dir}"))
    else:
        items = pregnancy_items()
        by_mode = {
            mode: score(
                Retriever(settings, bot.retriever.collection, bot.retriever.embed_model, mode), items, _page
            )
            for mode in MODES
        }
        note = f"{len(items)} questions against the store ({bot.retriever.count()} chunks of the pregnancy corpus)."
        out.append(_result("pregnancy_questions", len(items), by_mode, note, default))
    if cfg.size("medquad") == 0:
        return out
    distractors = cfg.size("medquad_corpus")
    mq, items, built = medquad_store(settings, distractors)
    retriever = Retriever.from_settings(mq, DEFAULT_MODE)
    by_mode = {
        mode: score(Retriever(mq, retriever.collection, retriever.embed_model, mode), items, _file)
        for mode in MODES
    }
    note = (
        f"{len(items)} questions; store of their gold answers + "
        f"{'all other' if distractors is None else distractors} other MedQuAD answers ({retriever.count()} chunks, "
        f"{'built in this run' if built else 'reused from ' + str(mq.store_dir)})."
    )
    out.append(_result("medquad", len(items), by_mode, note, default))
    return out


def medquad_store(settings: Settings, distractors: int | None):
    """``(settings of the MedQuAD store, items, built)``: built once by :func:`build_medquad` under
    ``<home>/eval/medquad-store`` and reused while the embedding model, chunking and corpus size are the same.
    """
    key = f"medquad-{distractors if distractors is not None else 'all'}-s{settings.seed}"
    mq = replace(settings, home=settings.home / "eval" / "medquad-store", collection=key)
    done = (
        mq.home
        / f"{key}-{settings.embedding_model.replace('/', '_')}-{settings.chunk_size}-{settings.chunk_overlap}.done"
    )
    if done.is_file():
        rows = _read(Path(settings.data_dir) / SETS["medquad"].path)
        return mq, [(r["question"], r["qid"]) for r in rows], False
    mq.home.mkdir(parents=True, exist_ok=True)
    items = build_medquad(
        mq, Path(settings.data_dir), 10**6 if distractors is None else distractors, settings.seed
    )
    done.write_text(f"{len(items)} questions\n")
    return mq, items, True


def _page(hit) -> tuple[str, int]:
    return (hit.file, hit.page)


def _file(hit) -> str:
    return hit.file


def _read(path: Path) -> list[dict]:
    from assistant.evaluation.suites import read_jsonl

    return read_jsonl(path)
