"""Sub-commands of ``python -m assistant``; each module has ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import logging
import os


def setup_logging(verbose: bool = False) -> None:
    """INFO (or DEBUG) logs to stderr; quiets chatty third-party loggers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in ("httpx", "chromadb", "urllib3", "sentence_transformers", "transformers", "numba", "bm25s"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chromadb: no telemetry from an offline tool
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
