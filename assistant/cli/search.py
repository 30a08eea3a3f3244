"""Search the ingested PDFs: the best passages with file, page and cosine score.

    python -m assistant search "iron supplements in pregnancy"
    python -m assistant search --top-k 3 --json "postpartum depression screening" "breastfeeding in the first hour"
    python -m assistant search --from-file questions.txt --json --mode hybrid     # one query per line

Models load once for all queries. With --json, one JSON object per query:
{"query": ..., "hits": [{"file", "page", "page_label", "score", "text"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.config import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queries", nargs="*", help="one or more queries (quote each)")
    parser.add_argument("--from-file", type=Path, help="read queries from FILE, one per line (default: none)")
    parser.add_argument("--top-k", type=int, help="passages per query (default: settings top_k = 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per query (default: text)")
    parser.add_argument(
        "--mode", choices=("dense", "hybrid"), help="retrieval mode (default: the benchmark winner)"
    )
    parser.add_argument("--collection", help="Chroma collection (default: settings collection)")
    parser.add_argument("--chroma-url", help="Chroma server http://HOST:PORT (default: embedded store)")
    parser.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")


def run(args: argparse.Namespace) -> int:
    from assistant.rag.retrieve import Retriever
    from assistant.rag.store import StoreError

    queries = [q for q in args.queries if q.strip()]
    if args.from_file:
        try:
            queries += [ln.strip() for ln in args.from_file.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            print(f"error: can't read --from-file {args.from_file}: {exc}", file=sys.stderr)
            return 2
    if not queries:
        print("error: give a QUERY or --from-file FILE", file=sys.stderr)
        return 2
    settings = load_settings({"home": args.home, "collection": args.collection, "top_k": args.top_k})
    try:
        retriever = Retriever.from_settings(settings, args.mode, chroma_url=args.chroma_url)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for query in queries:
        hits = retriever.retrieve(query, settings.top_k)
        if args.json:
            record = {
                "query": query,
                "hits": [
                    {
                        "file": h.file,
                        "page": h.page,
                        "page_label": h.page_label,
                        "score": round(h.score, 4),
                        "text": h.text,
                    }
                    for h in hits
                ],
            }
            print(json.dumps(record, ensure_ascii=False), flush=True)
            continue
        print(f"# {query}")
        for rank, h in enumerate(hits, start=1):
            snippet = " ".join(h.text.split())[:200]
            print(f"{rank}. {h.score:.3f}  {h.file}  p. {h.page_label} (page {h.page})\n   {snippet}")
        if not hits:
            print("   (no passages: the collection is empty)")
    return 0
