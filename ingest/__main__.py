"""Build or update the Chroma store from PDFs, with page-level citations.

    python -m ingest ../shared/corpora/pregnancy                 # a folder (walked recursively) or files
    python -m ingest --specialty pregnancy                        # that specialty's corpus, from its manifest
    python -m ingest ../shared/corpora/pregnancy --report run.json --prune
    python -m ingest docs/ --rebuild --chunk-size 254 --chunk-overlap 50
    python -m ingest docs/ --chroma-url http://127.0.0.1:8000     # a server: `chroma run --path DIR --port 8000`

Re-running is idempotent: unchanged files are skipped, changed ones replaced. Exit code 1 when nothing could be
ingested (or, with --strict, when any file failed); 2 for bad settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from assistant.cli import run_safely, setup_logging
from assistant.config import Settings, load_settings

logger = logging.getLogger("ingest")


@dataclass
class IngestConfig:
    """Everything one ingest run needs (``main`` takes this, never an argparse Namespace)."""

    settings: Settings
    paths: list[Path] = field(default_factory=list)
    specialty: str | None = None  # ingest this specialty's manifest corpus (data_dir/corpora/<name>)
    rebuild: bool = False
    prune: bool = False
    batch_size: int = 32
    chroma_url: str | None = None
    report: Path | None = None
    strict: bool = False


def build_parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    p.add_argument("--batch-size", type=int, default=32, help="chunks per embedding batch (default: 32)")
    p.add_argument("--rebuild", action="store_true", help="drop the collection first (default: off)")
    p.add_argument(
        "--prune", action="store_true", help="remove chunks of stored files not among PATHS (default: off)"
    )
    p.add_argument(
        "--chroma-url", help="Chroma server http://HOST:PORT (default: embedded store in HOME/store)"
    )
    p.add_argument("--report", type=Path, help="write the run's summary as JSON to FILE (default: none)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any file failed (default: off)")
    p.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")
    p.add_argument("--data-dir", help="folder with corpora/ for --specialty (default: $LLAMA_MD_DATA_DIR)")
    p.add_argument("--embedding-model", help="sentence-transformers id or folder (default: bundled MiniLM)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(cfg: IngestConfig) -> int:
    """Run one ingest; print the summary table; return the exit code."""
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


def config_from_args(argv: list[str] | None = None) -> IngestConfig:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
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
        batch_size=args.batch_size,
        chroma_url=args.chroma_url,
        report=args.report,
        strict=args.strict,
    )


def cli(argv: list[str] | None = None) -> int:
    config = config_from_args(argv)
    logger.info("settings: %s", json.dumps(config.settings.to_dict()))
    logger.info(
        "ingest: paths=%s specialty=%s rebuild=%s prune=%s batch_size=%d chroma_url=%s",
        [str(p) for p in config.paths],
        config.specialty,
        config.rebuild,
        config.prune,
        config.batch_size,
        config.chroma_url,
    )
    return main(config)


if __name__ == "__main__":
    sys.exit(run_safely(cli))
