"""Build or update the Chroma store from PDFs, with page-level citations.

    llama-md ingest ../shared/corpora/pregnancy                 # a folder (walked recursively) or files
    llama-md ingest --specialty pregnancy                        # that specialty's corpus, from its manifest
    llama-md ingest ../shared/corpora/pregnancy --report run.json --prune
    llama-md ingest docs/ --rebuild --chunk-size 254 --chunk-overlap 50
    llama-md ingest ../shared/corpora/pregnancy --prune --dry-run   # what would be added, replaced, removed
    llama-md ingest docs/ --chroma-url http://127.0.0.1:8000     # a server: `chroma run --path DIR --port 8000`

`python -m ingest ...` is the same command. Re-running is idempotent: unchanged files are skipped, changed ones
replaced. One writer at a time: a second ingest (or a chat upload) waits for the store's lock, or with --no-wait
exits at once. --prune only removes stored files under the given paths (or of --specialty) and nothing when no
input could be read; --rebuild swaps the new store in only when something was read. Exit code 1 when nothing could
be ingested (or, with --strict, when any file failed); 2 for bad settings or a held lock with --no-wait.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import Settings, load_settings


@dataclass
class IngestConfig:
    """Everything one ingest run needs (``main`` takes this, never an argparse Namespace)."""

    settings: Settings
    paths: list[Path] = field(default_factory=list)
    specialty: str | None = None  # ingest this specialty's manifest corpus (data_dir/corpora/<name>)
    rebuild: bool = False
    prune: bool = False
    dry_run: bool = False  # print what would be added, replaced and removed; write nothing
    wait: bool = True  # wait for another writer's lock (False: --no-wait, fail at once)
    batch_size: int = 32
    chroma_url: str | None = None
    report: Path | None = None
    strict: bool = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Settings()
    p.add_argument("paths", nargs="*", type=Path, help="PDF files and/or folders (walked recursively)")
    p.add_argument(
        "--specialty",
        help="ingest this specialty's corpus from corpora/<NAME>.toml (default: none; use PATHS)",
    )
    p.add_argument("--collection", help=f"Chroma collection name (default: {d.collection})")
    p.add_argument(
        "--chunk-size",
        type=int,
        help=f"chunk size in embedding-model tokens, at most 254 for all-MiniLM-L6-v2 (default: {d.chunk_size})",
    )
    p.add_argument(
        "--chunk-overlap", type=int, help=f"overlap in embedding-model tokens (default: {d.chunk_overlap})"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=IngestConfig.batch_size,
        help="chunks per embedding batch (default: 32)",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="build a new collection from PATHS alone; swapped in only if a file was read (default: off)",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove stored files under PATHS (or of --specialty) that are no longer there (default: off)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be added, replaced and removed; write nothing (default: off)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once when another ingest holds the store's lock (default: wait for it)",
    )
    p.add_argument(
        "--chroma-url", help="Chroma server http://HOST:PORT (default: embedded store in HOME/store)"
    )
    p.add_argument("--report", type=Path, help="write the run's summary as JSON to FILE (default: none)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any file failed (default: off)")
    p.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")
    p.add_argument("--data-dir", help="folder with corpora/ for --specialty (default: $LLAMA_MD_DATA_DIR)")
    p.add_argument("--embedding-model", help="sentence-transformers id or folder (default: bundled MiniLM)")


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    settings = load_settings(
        {
            "home": args.home,
            "data_dir": args.data_dir,
            "collection": args.collection,
            "chunk_size": args.chunk_size,
            "chunk_overlap": args.chunk_overlap,
            "embedding_model": args.embedding_model,
            "specialty": args.specialty,
        }
    )
    return IngestConfig(
        settings=settings,
        paths=args.paths,
        specialty=args.specialty,
        rebuild=args.rebuild,
        prune=args.prune,
        dry_run=args.dry_run,
        wait=not args.no_wait,
        batch_size=args.batch_size,
        chroma_url=args.chroma_url,
        report=args.report,
        strict=args.strict,
    )


def main(cfg: IngestConfig) -> int:
    """Run one ingest; print the summary table; return the exit code.

    Raises:
        CorpusError: ``--specialty`` names no corpus or its files are missing / altered.
        StoreError, ConfigError: the store refuses these settings (another embedding model, chunk size too long).
        StoreLockedError: ``wait`` is False and another writer holds the store's lock.
    """
    from assistant.rag.ingest import ingest_paths
    from corpora import resolve_corpus

    paths = list(cfg.paths)
    if cfg.specialty:
        paths += resolve_corpus(cfg.specialty, cfg.settings.data_dir)
    if not paths:
        print("Nothing to ingest: give PDF files or folders, or --specialty NAME.", file=sys.stderr)
        return 2
    report = ingest_paths(
        paths,
        cfg.settings,
        specialty=cfg.specialty,
        rebuild=cfg.rebuild,
        prune=cfg.prune,
        dry_run=cfg.dry_run,
        wait=cfg.wait,
        batch_size=cfg.batch_size,
        chroma_url=cfg.chroma_url,
        show_progress=True,
    )
    print(report.table())
    if cfg.report:
        cfg.report.parent.mkdir(parents=True, exist_ok=True)
        cfg.report.write_text(json.dumps(report.to_dict(), indent=2))
        print(f"report: {cfg.report}")
    if not report.ok:
        print("Nothing could be ingested (see the reasons above).", file=sys.stderr)
        return 1
    if cfg.strict and report.failed:
        return 1
    return 0
