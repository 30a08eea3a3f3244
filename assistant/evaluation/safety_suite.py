"""Safety suite: red-flag sensitivity and false-alarm rate, measured by the safety issue's own benchmark.

The screen runs before generation, so its figures are the same for every variant: one column per message set.
The sets and ``evaluate`` live in the repository's ``benchmarks/`` (not installed with the package); from an
installed copy without them the suite is reported as skipped.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from assistant.evaluation.suites import SETS

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SAFETY_SETS = ("red_flags.jsonl", "red_flags_heldout.jsonl")


def benchmark_module(name: str):
    """Import ``benchmarks.<name>`` from the repository checkout; None when it isn't there."""
    if not (REPO / "benchmarks" / f"{name}.py").is_file():
        return None
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"benchmarks.{name}")


def evaluate_safety() -> list[dict]:
    """One result set: sensitivity and false-alarm rate per message set (columns), with the set sizes."""
    info = SETS["red_flags"]
    bench = benchmark_module("safety_bench")
    result = {
        "name": "red_flags",
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": 0,
        "columns": [],
        "metrics": {},
        "baselines": {},
        "items": {},
        "notes": ["The red-flag screen runs before generation: the same for every variant."],
    }
    if bench is None:
        result["notes"].append("skipped: benchmarks/safety_bench.py is not in this checkout")
        return [result]
    for name in SAFETY_SETS:
        r = bench.evaluate(bench.DATA / name)
        column = "held-out set" if "heldout" in name else "written set (rules fitted to it)"
        result["columns"].append(column)
        result["n"] += r["emergency"] + r["benign"]
        for metric in ("sensitivity", "false_alarm_rate", "emergency", "benign"):
            result["metrics"].setdefault(metric, {})[column] = r[metric]
        result["items"][column] = {"missed": r["missed"], "false_alarms": r["false_alarms"]}
    return [result]
