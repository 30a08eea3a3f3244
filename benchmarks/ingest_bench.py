"""Ingest throughput: a fresh ingest of a corpus, the bare-encode ceiling, and a re-ingest of the unchanged corpus.

    nice -n 5 .venv/bin/python -m benchmarks.ingest_bench --corpus ../shared/corpora/pregnancy --home /tmp/bench-home

Prints (and writes to ``--out``, default ``<home>/ingest_bench.json``):

* fresh ingest (``--rebuild``): seconds, pages/s, chunks/s, peak RSS of the process (models included);
* ``encode_ratio``: the pipeline's chunk throughput (PDF reading, splitting, embedding, Chroma writes,
  docstore) divided by a bare sentence-transformers ``encode`` of the very same chunk texts at the same batch size
  (target >= 0.8); ``encode_ratio_cpu`` is the same ratio in process CPU seconds, which other processes on a
  shared machine disturb much less than wall time;
* ``reingest_fraction``: re-ingest of the unchanged corpus / fresh ingest time (target <= 5%);
* ``lock_and_checks_s``: what the one-writer safety adds to every run (issue #17): taking and releasing the store's
  file lock, reopening a fresh Chroma client and reading the generation counter; median of 20 rounds,
  and ``lock_and_checks_fraction`` = that / fresh ingest time.

The store it leaves behind is what ``benchmarks.retrieval_bench`` reads (same ``--home``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(corpus: Path, home: Path, batch_size: int, chunk_size: int | None, chunk_overlap: int | None) -> dict:
    import torch

    from assistant.config import load_settings
    from assistant.models import load_embedder, load_index_embedder
    from assistant.rag.ingest import ingest_paths
    from assistant.rag.store import open_collection

    settings = load_settings(
        {"home": str(home), "chunk_size": chunk_size, "chunk_overlap": chunk_overlap}, environ={}
    )
    load_index_embedder(None, settings, batch_size=batch_size)  # model load is not ingest time
    cpu0 = time.process_time()
    fresh = ingest_paths([corpus], settings, rebuild=True, batch_size=batch_size, show_progress=True)
    fresh_cpu_s = time.process_time() - cpu0
    rss_after_fresh = peak_rss_mib()
    t = fresh.totals()
    collection = open_collection(settings)
    texts = collection.get(include=["documents"])["documents"]
    encoder = load_embedder(settings.embedding_model, settings, device="cpu")
    started, cpu0 = time.perf_counter(), time.process_time()
    encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    encode_s, encode_cpu_s = time.perf_counter() - started, time.process_time() - cpu0
    again = ingest_paths([corpus], settings, batch_size=batch_size, show_progress=True)
    a = again.totals()
    lock_s = lock_and_checks_s(settings)
    chunks = collection.count()
    return {
        "corpus": str(corpus),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "batch_size": batch_size,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "files": t["ingested"],
        "pages": t["pages"],
        "chunks": chunks,
        "fresh_s": round(fresh.seconds, 2),
        "pages_per_s": round(t["pages"] / fresh.seconds, 2),
        "chunks_per_s": round(chunks / fresh.seconds, 2),
        "peak_rss_mib": round(rss_after_fresh, 1),
        "bare_encode_s": round(encode_s, 2),
        "bare_encode_chunks_per_s": round(chunks / encode_s, 2),
        "encode_ratio": round(encode_s / fresh.seconds, 3),
        "fresh_cpu_s": round(fresh_cpu_s, 1),
        "bare_encode_cpu_s": round(encode_cpu_s, 1),
        "encode_ratio_cpu": round(encode_cpu_s / fresh_cpu_s, 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "reingest_s": round(again.seconds, 3),
        "reingest_unchanged_files": a["unchanged"],
        "reingest_chunks_added": a["chunks_added"],
        "reingest_fraction": round(again.seconds / fresh.seconds, 4),
        "lock_and_checks_s": round(lock_s, 4),
        "lock_and_checks_fraction": round(lock_s / fresh.seconds, 5),
    }


def lock_and_checks_s(settings, rounds: int = 20) -> float:
    """Median seconds of what ingest does for safety around the files: lock, fresh client, generation read."""
    import statistics

    from assistant.rag import store as st
    from assistant.rag.lock import store_lock

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with store_lock(settings):
            client = st.open_client(settings, fresh=True)
            st.store_generation(st.open_collection(settings, client=client))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpora/pregnancy"), help="PDF folder")
    parser.add_argument(
        "--home", type=Path, default=Path("/tmp/llama-md-bench"), help="llama-md home to build in"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="embedding batch size (default: 32)")
    parser.add_argument("--chunk-size", type=int, help="embedding tokens (default: settings, 254)")
    parser.add_argument("--chunk-overlap", type=int, help="embedding tokens (default: settings, 50)")
    parser.add_argument("--out", type=Path, help="JSON results (default: HOME/ingest_bench.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args.corpus, args.home, args.batch_size, args.chunk_size, args.chunk_overlap)
    out = args.out or args.home / "ingest_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        print(f"{key:>26}: {value}")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
