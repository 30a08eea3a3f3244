"""The ``llama-md`` command line (also ``python -m assistant``): one subcommand per pipeline step.

    llama-md doctor                                   # versions, device, models, data, store
    llama-md topics ../shared/datasets/chatdoctor5k.json
    llama-md ingest --specialty pregnancy
    llama-md finetune --preset smollm2-135m --max-samples 1000
    llama-md finetune export RUN_DIR --to gguf --quant q8_0   # merged / GGUF / Ollama + parity proof
    llama-md search "iron supplements in pregnancy" --top-k 5
    llama-md chat "What should I eat during the third trimester?"
    llama-md evaluate --suite quick
    llama-md safety eval                              # red-flag screen on its held-out test set
    llama-md retriever train                          # the medical retriever and re-ranker
    llama-md specialty "a rash on both elbows"        # question -> specialty (top-3, unsure)
    llama-md demo                                     # doctor -> topics -> ingest -> fine-tune -> chat
    llama-md ui                                       # the chat on http://localhost:8501
    llama-md serve                                    # the generator over an OpenAI-compatible API (llama.cpp)

Every subcommand module has the same three parts: ``add_arguments(parser)``, ``config_from_args(args)`` (flags ->
a config object, settings resolved) and ``main(cfg) -> exit code``, which tests call directly. :func:`main`
parses, resolves, logs the resolved config and runs ``main(cfg)`` under :func:`run_safely`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from assistant.errors import LlamaMdError, report_unexpected

logger = logging.getLogger("llama-md")

#: subcommand -> module with add_arguments(parser), config_from_args(args) and main(cfg).
COMMANDS = {
    "doctor": "assistant.cli.doctor",
    "topics": "assistant.cli.topics",
    "ingest": "assistant.cli.ingest",
    "finetune": "assistant.cli.finetune",
    "export": "assistant.cli.export",
    "search": "assistant.cli.search",
    "chat": "assistant.cli.chat",
    "evaluate": "assistant.cli.evaluate",
    "safety": "assistant.cli.safety",
    "retriever": "assistant.cli.retriever",
    "specialty": "assistant.cli.specialty",
    "demo": "assistant.cli.demo",
    "ui": "assistant.cli.ui",
    "serve": "assistant.cli.serve",
}


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


def build_parser() -> argparse.ArgumentParser:
    """The ``llama-md`` parser; each subparser's ``command`` default is its module."""
    parser = argparse.ArgumentParser(
        prog="llama-md",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        doc = module.__doc__ or ""
        subparser = sub.add_parser(
            name,
            help=doc.strip().split("\n")[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        subparser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
        module.add_arguments(subparser)
        subparser.set_defaults(command=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["finetune", "export"]:  # `finetune export RUN_DIR` is `export RUN_DIR`
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        cfg = args.command.config_from_args(args)
        logger.info("%s: %s", args.subcommand, json.dumps(_plain(cfg), default=str))
        return args.command.main(cfg)

    return run_safely(run)


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


def _plain(cfg: Any) -> Any:
    """A config object as JSON-friendly data, for the log line that records what ran."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
