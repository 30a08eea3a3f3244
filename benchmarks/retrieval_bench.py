"""Retrieval quality and latency: dense, hybrid (dense + BM25, reciprocal-rank fusion) and convex (dense + BM25,
weighted normalised scores; the default).

    # the pregnancy store built by benchmarks.ingest_bench (same --home), 49 written page questions:
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home /tmp/bench-home
    # plus MedQuAD: a store of answers from ../shared/datasets/medquad.jsonl, 500 sample questions:
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home /tmp/bench-home --medquad ../shared
    # the held-out page questions (set 2, written without running retrieval; report only):
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home /tmp/bench-home \
        --questions assistant/evaluation/data/pregnancy_questions_2.jsonl --out /tmp/set2.json

Pregnancy: ``assistant/evaluation/data/pregnancy_questions.jsonl`` holds questions written about one page each
({question, file, page}); a question counts as found at k when a chunk of that page is among the first k hits.
Reported: recall@1/5/10 and MRR@5 (reciprocal rank of the first right hit within 5, else 0).
MedQuAD: the store holds the 500 sample questions' gold answers plus ``--medquad-distractors`` other answers,
chunked and embedded like the PDFs; hit@k counts a chunk of the gold answer among the first k hits.
Latency: wall time of ``Retriever.retrieve`` per query (query embedding included), p50 / p95 in ms.
Scoring and the MedQuAD store come from :mod:`assistant.evaluation.retrieval_suite`; figures in docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from assistant.evaluation.retrieval_suite import QUESTIONS, build_medquad, pregnancy_items, score
from assistant.evaluation.suites import read_jsonl
from assistant.rag.retrieve import MODES

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def pregnancy(settings, modes, questions: Path) -> dict:
    from assistant.rag.retrieve import Retriever

    items = pregnancy_items(questions)
    results = {}
    for mode in modes:
        retriever = Retriever.from_settings(settings, mode)
        retriever.retrieve("warm-up query", 1)  # loads the model (and builds BM25) outside the timings
        results[mode] = score(retriever, items, lambda h: (h.file, h.page))
    results["chunks"] = retriever.count()
    return results


def medquad(settings, data_dir: Path, distractors: int, modes, reuse: bool) -> dict:
    from dataclasses import replace

    from assistant.rag.retrieve import Retriever

    mq = replace(settings, collection="medquad-bench")
    if reuse:  # the store a previous run built with the same --medquad-distractors
        rows = read_jsonl(data_dir / "eval/retrieval/medquad_q2a_sample500.jsonl")
        items = [(r["question"], r["qid"]) for r in rows]
    else:
        items = build_medquad(mq, data_dir, distractors, settings.seed)
    results = {}
    for mode in modes:
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
    parser.add_argument(
        "--medquad-reuse",
        action="store_true",
        help="score the MedQuAD store an earlier run left in HOME (same --medquad-distractors) instead of rebuilding it",
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated retrieval modes (default: all of {MODES})"
    )
    parser.add_argument(
        "--questions",
        type=Path,
        default=QUESTIONS,
        help="page questions {question, file, page} (default: set 1; the held-out set 2 is QUESTIONS_2's file)",
    )
    parser.add_argument("--skip-pregnancy", action="store_true", help="only MedQuAD")
    parser.add_argument("--out", type=Path, help="JSON results (default: HOME/retrieval_bench.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from assistant.config import load_settings

    settings = load_settings({"home": str(args.home), "collection": args.collection}, environ={})
    out_path = args.out or args.home / "retrieval_bench.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {unknown}; use some of {MODES}")
    if not args.skip_pregnancy:
        results["pregnancy"] = pregnancy(settings, modes, args.questions)
    if args.medquad:
        results["medquad"] = medquad(
            settings, args.medquad, args.medquad_distractors, modes, args.medquad_reuse
        )
    out_path.write_text(json.dumps(results, indent=2))
    for name, res in results.items():
        for mode in MODES:
            if mode in res:
                r = {k: v for k, v in res[mode].items() if k != "misses"}
                print(f"{name:>10} {mode:>6}: {r}")
    print(f"written: {out_path}")


if __name__ == "__main__":
    main()
