"""Retrieval quality and latency, dense vs hybrid (dense + BM25, reciprocal-rank fusion).

    # the pregnancy store built by benchmarks.ingest_bench (same --home), 49 written page questions:
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home /tmp/bench-home
    # plus MedQuAD: a store of answers from ../shared/datasets/medquad.jsonl, 500 sample questions:
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home /tmp/bench-home --medquad ../shared

Pregnancy: ``benchmarks/data/pregnancy_questions.jsonl`` holds questions written about one page each
({question, file, page}); a question counts as found at k when a chunk of that page is among the first k hits.
Reported: recall@1/5/10 and MRR@5 (reciprocal rank of the first right hit within 5, else 0).
MedQuAD: the store holds the 500 sample questions' gold answers plus ``--medquad-distractors`` other answers,
chunked and embedded like the PDFs; hit@k counts a chunk of the gold answer among the first k hits.
Latency: wall time of ``Retriever.retrieve`` per query (query embedding included), p50 / p95 in ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

QUESTIONS = Path(__file__).resolve().parent / "data" / "pregnancy_questions.jsonl"
KS = (1, 5, 10)


def score(retriever, items: list[tuple[str, object]], key) -> dict:
    """recall@k, MRR@5 and latency for ``items`` = [(question, gold)], ``key(hit) -> gold-comparable``."""
    ranks, latencies, misses = [], [], []
    for question, gold in items:
        started = time.perf_counter()
        hits = retriever.retrieve(question, top_k=max(KS))
        latencies.append((time.perf_counter() - started) * 1000)
        keys = [key(h) for h in hits]
        rank = keys.index(gold) + 1 if gold in keys else None
        ranks.append(rank)
        if rank is None or rank > 5:
            misses.append(
                {"question": question, "gold": gold, "rank": rank, "top1": keys[0] if keys else None}
            )
    n = len(items)
    out = {f"recall@{k}": round(sum(1 for r in ranks if r and r <= k) / n, 3) for k in KS}
    out["mrr@5"] = round(sum(1 / r for r in ranks if r and r <= 5) / n, 3)
    out["p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
    out["p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
    out["n"] = n
    out["misses"] = misses
    return out


def pregnancy(settings) -> dict:
    from assistant.retrieval import Retriever

    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    items = [(r["question"], (r["file"], r["page"])) for r in rows]
    results = {}
    for mode in ("dense", "hybrid"):
        retriever = Retriever.from_settings(settings, mode)
        retriever.retrieve("warm-up query", 1)  # loads the model (and builds BM25) outside the timings
        results[mode] = score(retriever, items, lambda h: (h.file, h.page))
    results["chunks"] = retriever.count()
    return results


def medquad_key(row: dict) -> str:
    """medquad.jsonl row -> the sample's qid: ``<collection no.>_<id>`` (ids repeat across collections)."""
    return f"{row['collection'].split('_', 1)[0]}_{row['id']}"


def build_medquad(settings, data_dir: Path, distractors: int, seed: int) -> list[tuple[str, str]]:
    """Ingest gold + distractor answers as llama-index Documents into ``settings.collection``; return items."""
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant import store as st
    from assistant.ingestion import embedding_for, make_splitter

    sample = [
        json.loads(line)
        for line in (data_dir / "eval/retrieval/medquad_q2a_sample500.jsonl").read_text().splitlines()
    ]
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
    embed = embedding_for(settings)
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
    logging.getLogger(__name__).warning(
        "MedQuAD store: %d answers, %d chunks in %.0f s",
        len(docs),
        collection.count(),
        time.perf_counter() - started,
    )
    return [(s["question"], s["qid"]) for s in sample]


def medquad(settings, data_dir: Path, distractors: int) -> dict:
    from dataclasses import replace

    from assistant.retrieval import Retriever

    mq = replace(settings, collection="medquad-bench")
    items = build_medquad(mq, data_dir, distractors, settings.seed)
    results = {}
    for mode in ("dense", "hybrid"):
        retriever = Retriever.from_settings(mq, mode)
        retriever.retrieve("warm-up query", 1)
        found = score(retriever, items, lambda h: h.file)
        found["misses"] = found["misses"][:10]
        results[mode] = found
    results["chunks"] = retriever.count()
    results["answers"] = 500 + distractors
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path("/tmp/llama-md-bench"), help="home with the store")
    parser.add_argument("--collection", default="llama-md", help="collection with the pregnancy corpus")
    parser.add_argument(
        "--medquad", type=Path, help="data folder (../shared) to also run the MedQuAD benchmark"
    )
    parser.add_argument(
        "--medquad-distractors", type=int, default=500, help="extra answers in the MedQuAD store"
    )
    parser.add_argument("--skip-pregnancy", action="store_true", help="only MedQuAD")
    parser.add_argument("--out", type=Path, help="JSON results (default: HOME/retrieval_bench.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from assistant.config import load_settings

    settings = load_settings({"home": str(args.home), "collection": args.collection}, environ={})
    out_path = args.out or args.home / "retrieval_bench.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    if not args.skip_pregnancy:
        results["pregnancy"] = pregnancy(settings)
    if args.medquad:
        results["medquad"] = medquad(settings, args.medquad, args.medquad_distractors)
    out_path.write_text(json.dumps(results, indent=2))
    for name, res in results.items():
        for mode in ("dense", "hybrid"):
            if mode in res:
                r = {k: v for k, v in res[mode].items() if k != "misses"}
                print(f"{name:>10} {mode:>6}: {r}")
    print(f"written: {out_path}")


if __name__ == "__main__":
    main()
