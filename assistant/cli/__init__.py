"""Sub-commands of ``python -m assistant``; each module has ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from assistant.errors import LlamaMdError, report_unexpected


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


def run_safely(command: Callable[..., int], *args: Any) -> int:
    """Run ``command(*args)`` and turn errors into one plain sentence on stderr and an exit code.

    A :class:`LlamaMdError` prints its message (what was wrong and how to fix it) and returns its ``exit_code``;
    anything else is a bug: its traceback goes to ``$LLAMA_MD_HOME/logs/errors.log`` and the code is 1.
    """
    try:
        return command(*args)
    except LlamaMdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors are reported
        print(f"error: {report_unexpected(exc, _logs_dir())}", file=sys.stderr)
        return 1


def _logs_dir():
    from assistant.config import load_settings

    try:
        return load_settings().logs_dir
    except LlamaMdError:
        return None
