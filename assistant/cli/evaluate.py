"""Evaluate base vs RAG vs fine-tuned vs fine-tuned + RAG on the real evaluation sets, in one report.

    llama-md evaluate                                   # quick suite, all four variants, newest run
    llama-md evaluate --suite full --out eval/full
    llama-md evaluate --adapter .llama-md/runs/RUN --variants base,ft
    llama-md evaluate --variants base,rag --parts closed,safety
    llama-md evaluate --generator-url http://127.0.0.1:8080/v1   # generate on `llama-md serve` (llama.cpp)

Writes report.md, report.json and one PNG per suite into --out (default $LLAMA_MD_HOME/eval/<UTC time>).
Evaluation sets are read from $LLAMA_MD_DATA_DIR/eval (e.g. ../shared/eval). Greedy decoding.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings, load_settings
from assistant.evaluation.runner import EvalConfig

#: The question sets --limit caps (retrieval sets keep the suite's sizes).
LIMITED = ("chatdoctor", "kqa", "pubmedqa", "bioasq", "obgyn")


@dataclass
class EvaluateConfig:
    settings: Settings
    eval: EvalConfig
    out: Path  # report folder
    threads: int | None = None  # torch CPU threads (None: torch's choice)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        choices=("quick", "full"),
        default="quick",
        help="quick: samples, < 15 min on 2 CPU cores; full: every item",
    )
    parser.add_argument(
        "--adapter",
        help="adapter or run folder (default: newest run in $LLAMA_MD_HOME/runs); 'none' = no adapter",
    )
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset of base,rag,ft,ft+rag (default: all four)"
    )
    parser.add_argument(
        "--parts",
        default="patient,closed,retrieval,safety",
        help="comma-separated suites to run (default: all)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: $LLAMA_MD_HOME/eval/<UTC time>)")
    parser.add_argument("--data-dir", help="folder with eval/ and datasets/ (default: $LLAMA_MD_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for the item samples (default 0)")
    parser.add_argument(
        "--generator-url",
        help="generate on this OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1 from `llama-md serve`) "
        "instead of in-process; closed questions then have no log-likelihood fallback",
    )
    parser.add_argument(
        "--limit", type=int, help="at most this many items per question set (default: the suite's sizes)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice); 1 is much faster on a CPU shared with other jobs",
    )


def config_from_args(args: argparse.Namespace) -> EvaluateConfig:
    url = args.generator_url
    settings = load_settings(
        {"data_dir": args.data_dir, "generator_url": url, "generator_backend": "openai" if url else None}
    )
    adapter = None if (args.adapter or "").lower() == "none" else (args.adapter or "auto")
    variants = tuple(v.strip() for v in (args.variants or "base,rag,ft,ft+rag").split(",") if v.strip())
    cfg = EvalConfig(
        suite=args.suite,
        variants=variants,
        adapter=adapter,
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
        seed=args.seed,
        sizes={name: args.limit for name in LIMITED} if args.limit is not None else {},
    )
    out = args.out or settings.home / "eval" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return EvaluateConfig(settings, cfg, out, args.threads)


def main(cfg: EvaluateConfig) -> int:
    """Run the suites, write report.md / report.json / PNGs into ``cfg.out`` and print report.md."""
    from assistant.evaluation.report import write_report
    from assistant.evaluation.runner import evaluate

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    e = cfg.eval
    print(f"evaluate: suite {e.suite}, variants {','.join(e.variants)}, out {cfg.out}", file=sys.stderr)
    results = evaluate(e, cfg.settings)
    path = write_report(results, cfg.out)
    print(path.read_text())
    print(f"report: {path}", file=sys.stderr)
    return 0
