"""Search the ingested PDFs: the best passages with file, page and cosine score.

    llama-md search "iron supplements in pregnancy"
    llama-md search --top-k 3 --json "postpartum depression screening" "breastfeeding in the first hour"
    llama-md search --from-file questions.txt --json --mode hybrid     # one query per line

Models load once for all queries. With --json, one JSON object per query:
{"query": ..., "hits": [{"file", "page", "page_label", "score", "text"}, ...]}. Exit code 1 when there is no store.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import ConfigError, Settings, load_settings
from assistant.rag.retrieve import DEFAULT_MODE, MODES


@dataclass
class SearchConfig:
    settings: Settings
    queries: list[str] = field(default_factory=list)
    as_json: bool = False
    mode: str | None = None  # None: the retriever's default mode
    chroma_url: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queries", nargs="*", help="one or more queries (quote each)")
    parser.add_argument("--from-file", type=Path, help="read queries from FILE, one per line (default: none)")
    parser.add_argument("--top-k", type=int, help="passages per query (default: settings top_k = 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per query (default: text)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        help=f"retrieval mode, one of {MODES} (default: {DEFAULT_MODE}, the benchmark winner)",
    )
    parser.add_argument("--collection", help="Chroma collection (default: settings collection)")
    parser.add_argument("--chroma-url", help="Chroma server http://HOST:PORT (default: embedded store)")
    parser.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """Raises ConfigError when no query is given or --from-file can't be read."""
    queries = [q for q in args.queries if q.strip()]
    if args.from_file:
        try:
            queries += [ln.strip() for ln in args.from_file.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise ConfigError(f"can't read --from-file {args.from_file}: {exc}") from exc
    if not queries:
        raise ConfigError("give a QUERY or --from-file FILE")
    settings = load_settings({"home": args.home, "collection": args.collection, "top_k": args.top_k})
    return SearchConfig(settings, queries, args.json, args.mode, args.chroma_url)


def main(cfg: SearchConfig) -> int:
    """Print the best passages per query; 1 when there is no store to search."""
    from assistant.rag.retrieve import Retriever
    from assistant.rag.store import StoreError

    settings = cfg.settings
    try:
        retriever = Retriever.from_settings(settings, cfg.mode, chroma_url=cfg.chroma_url)
    except StoreError as exc:  # nothing to search: 1, as for an ingest that found nothing
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for query in cfg.queries:
        hits = retriever.retrieve(query, settings.top_k)
        if cfg.as_json:
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
