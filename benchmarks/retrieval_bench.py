"""Retrieval quality and latency, every retriever variant side by side in one run.

    # HOME holds the pregnancy store (`llama-md ingest --specialty pregnancy`, collection llama-md, MiniLM):
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home HOME --data ../shared
    nice -n 5 .venv/bin/python -m benchmarks.retrieval_bench --home HOME --data ../shared --sets set2,set3 \\
        --variants convex,convex+rerank

Variants (``--variants``): ``dense``, ``hybrid`` and ``convex`` (today's fusion, the default mode) over the bundled
all-MiniLM-L6-v2; ``convex+rerank`` (the cross-encoder re-ranks the first 20 pages); ``medical-dense``,
``medical`` (convex) and ``medical+rerank`` over the fine-tuned retriever (``llama-md/minilm-medical``). The medical
variants read a copy of each store re-embedded with it (``<collection>--medical``, built once by
:func:`assistant.rag.reembed.reembed_store`, chunks and metadata identical).

Sets (``--sets``): ``set1`` (49 pregnancy page questions, tuned on), ``set2`` (68, held out), ``set3`` (91, held
out, written before the retriever was trained) -- found at k when a chunk of the gold page is among the first k;
``bioasq``: the held-out BioASQ split (every fifth question, :func:`assistant.rag.pairs.bioasq_split`, never
trained on) against all 20,554 snippets, found when a gold snippet (qrels) is among the first k; ``medquad``: the
500-question MedQuAD q2a sample against their answers plus 500 other answers (excluded from training by id and
near-duplicate question). Reported: recall@1/5/10, MRR@5, and query latency p50 / p95 in ms (embedding, fusion and
re-ranking included). Figures: docs/results.md, retrieval.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

from assistant.evaluation.retrieval_suite import build_medquad, pregnancy_items, score
from assistant.evaluation.suites import read_jsonl

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

DATA = Path(__file__).resolve().parents[1] / "assistant" / "evaluation" / "data"
PAGE_SETS = {
    "set1": DATA / "pregnancy_questions.jsonl",
    "set2": DATA / "pregnancy_questions_2.jsonl",
    "set3": DATA / "pregnancy_questions_3.jsonl",
}
#: name -> (embedding model, mode, rerank)
VARIANTS = {
    "dense": ("base", "dense", "off"),
    "hybrid": ("base", "hybrid", "off"),
    "convex": ("base", "convex", "off"),
    "convex+rerank": ("base", "convex", "on"),
    "medical-dense": ("medical", "dense", "off"),
    "medical": ("medical", "convex", "off"),
    "medical+rerank": ("medical", "convex", "on"),
}
MEDICAL_SUFFIX = "--medical"


def store_for(settings, embedder: str):
    """Settings of the collection to read for ``embedder`` ("base" or "medical"), re-embedding a copy once."""
    from assistant.config import TRAINED_RETRIEVER
    from assistant.rag.reembed import reembed_store
    from assistant.rag.store import StoreError, open_collection

    if embedder == "base":
        return settings
    medical = replace(
        settings, collection=settings.collection + MEDICAL_SUFFIX, embedding_model=TRAINED_RETRIEVER
    )
    try:
        open_collection(medical)
    except StoreError:  # missing, or built with an older build of the retriever
        reembed_store(medical, source=settings.collection)
    return medical


def bioasq_store(settings, data_dir: Path):
    """Settings of a store holding every BioASQ snippet (one chunk each, file = snippet id), built once."""
    from assistant.models import load_embedder
    from assistant.rag import store as st

    bq = replace(settings, collection="bioasq-snippets")
    try:
        if st.open_collection(bq).count() > 0:
            return bq
    except st.StoreError:
        pass
    rows = read_jsonl(data_dir / "eval/retrieval/bioasq_snippet_corpus.jsonl")
    embedder = load_embedder(None, bq)
    collection = st.open_collection(bq, create_dim=embedder.get_sentence_embedding_dimension())
    for start in range(0, len(rows), 512):
        batch = rows[start : start + 512]
        vectors = embedder.encode([r["text"] for r in batch], normalize_embeddings=True, batch_size=64)
        collection.add(
            ids=[r["sid"] for r in batch],
            documents=[r["text"] for r in batch],
            metadatas=[{"file": r["sid"], "page": 1, "page_label": "1"} for r in batch],
            embeddings=vectors.tolist(),
        )
    return bq


def bioasq_items(data_dir: Path) -> list[tuple[str, frozenset]]:
    """Held-out BioASQ questions with their gold snippet ids (qrels)."""
    from assistant.rag.pairs import bioasq_split

    gold: dict[str, set] = {}
    for line in (data_dir / "eval/retrieval/bioasq_snippet_qrels.tsv").read_text().splitlines()[1:]:
        qid, sid = line.split("\t")
        gold.setdefault(qid, set()).add(sid)
    rows = read_jsonl(data_dir / "eval/retrieval/bioasq_7b-11b_golden_questions_snippets.jsonl")
    return [
        (r["question"], frozenset(gold[r["id"]]))
        for r in rows
        if bioasq_split(r["id"]) == "eval" and r["id"] in gold
    ]


def medquad_store(settings, data_dir: Path, distractors: int):
    """Settings of the MedQuAD answer store (the 500 sample questions' answers + ``distractors``), built once."""
    from assistant.rag import store as st

    mq = replace(settings, collection=f"medquad-{distractors}")
    rows = read_jsonl(data_dir / "eval/retrieval/medquad_q2a_sample500.jsonl")
    items = [(r["question"], r["qid"]) for r in rows]
    try:
        if st.open_collection(mq).count() > 0:
            return mq, items
    except st.StoreError:
        pass
    return mq, build_medquad(mq, data_dir, distractors, settings.seed)


def run_variant(settings, name: str, items, key) -> dict:
    from assistant.models import load_index_embedder
    from assistant.rag.rerank import load_reranker
    from assistant.rag.retrieve import Retriever
    from assistant.rag.store import open_collection

    embedder, mode, rerank = VARIANTS[name]
    chosen = store_for(settings, embedder)
    retriever = Retriever(
        chosen,
        open_collection(chosen),
        load_index_embedder(None, chosen),
        mode,
        reranker=load_reranker(replace(chosen, rerank=rerank)),
    )
    retriever.retrieve("warm-up query", 1)  # loads the models (and builds BM25) outside the timings
    result = score(retriever, items, key)
    result["misses"] = result["misses"][:15]
    result["chunks"] = retriever.count()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="home with the pregnancy store")
    parser.add_argument("--collection", default="llama-md", help="collection with the pregnancy corpus")
    parser.add_argument("--data", type=Path, help="data folder (../shared) for the bioasq and medquad sets")
    parser.add_argument("--sets", default="set1,set2,set3,bioasq,medquad", help="comma-separated sets")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument(
        "--medquad-distractors", type=int, default=500, help="other answers in the MedQuAD store"
    )
    parser.add_argument("--out", type=Path, help="JSON results (default: HOME/retrieval_bench.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from assistant.config import load_settings

    settings = load_settings({"home": str(args.home), "collection": args.collection}, environ={})
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; use some of {list(VARIANTS)}")
    if ({"bioasq", "medquad"} & set(sets)) and args.data is None:
        parser.error("--sets bioasq / medquad need --data ../shared")
    out_path = args.out or args.home / "retrieval_bench.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in sets:
        if name in PAGE_SETS:
            chosen, items, key = settings, pregnancy_items(PAGE_SETS[name]), lambda h: (h.file, h.page)
        elif name == "bioasq":
            chosen, items, key = bioasq_store(settings, args.data), bioasq_items(args.data), lambda h: h.file
        elif name == "medquad":
            chosen, items = medquad_store(settings, args.data, args.medquad_distractors)
            key = lambda h: h.file  # noqa: E731
        else:
            parser.error(f"--sets: unknown {name!r}")
        results.setdefault(name, {})
        for variant in variants:
            results[name][variant] = run_variant(chosen, variant, items, key)
            r = results[name][variant]
            print(
                f"{name:>8} {variant:>15}: n={r['n']} R@1 {r['recall@1']:.3f} R@5 {r['recall@5']:.3f} "
                f"R@10 {r['recall@10']:.3f} MRR@5 {r['mrr@5']:.3f}  p50 {r['p50_ms']:.0f} ms p95 {r['p95_ms']:.0f} ms",
                flush=True,
            )
            out_path.write_text(json.dumps(results, indent=2))
    print(f"written: {out_path}")


if __name__ == "__main__":
    main()
