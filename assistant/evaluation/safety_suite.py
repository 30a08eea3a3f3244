"""Safety suite: sensitivity and false-alarm rate of the red-flag screen on written message sets.

Sets (``assistant/evaluation/data``): ``red_flags.jsonl`` (70 emergency / 65 benign; the rules were written against
it) and ``red_flags_heldout.jsonl`` (30 / 30; written afterwards, its first run is in docs/results.md). Each line is
``{"text": ..., "emergency": true|false}``. The screen runs before generation, so its figures are the same for every
variant: one column per message set. ``benchmarks/safety_bench.py`` prints them as a table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from assistant.chat.safety import screen
from assistant.evaluation.suites import SETS

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
SAFETY_SETS = ("red_flags.jsonl", "red_flags_heldout.jsonl")


def evaluate(path: Path) -> dict:
    """Screen every message of one set.

    Args:
        path: a JSON-lines file of ``{"text", "emergency"}`` rows.

    Returns:
        ``{"set", "emergency", "benign", "sensitivity", "false_alarm_rate", "missed", "false_alarms"}``: counts,
        the two rates in [0, 1], and the texts the screen got wrong.
    """
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    emergencies = [r for r in rows if r["emergency"]]
    benign = [r for r in rows if not r["emergency"]]
    missed = [r["text"] for r in emergencies if not screen(r["text"]).emergency]
    false_alarms = [r["text"] for r in benign if screen(r["text"]).emergency]
    return {
        "set": Path(path).name,
        "emergency": len(emergencies),
        "benign": len(benign),
        "sensitivity": 1 - len(missed) / len(emergencies),
        "false_alarm_rate": len(false_alarms) / len(benign),
        "missed": missed,
        "false_alarms": false_alarms,
    }


def evaluate_safety() -> list[dict]:
    """One result set: sensitivity and false-alarm rate per message set (columns), with the set sizes."""
    info = SETS["red_flags"]
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
    for name in SAFETY_SETS:
        r = evaluate(DATA / name)
        column = "held-out set" if "heldout" in name else "written set (rules fitted to it)"
        result["columns"].append(column)
        result["n"] += r["emergency"] + r["benign"]
        for metric in ("sensitivity", "false_alarm_rate", "emergency", "benign"):
            result["metrics"].setdefault(metric, {})[column] = r[metric]
        result["items"][column] = {"missed": r["missed"], "false_alarms": r["false_alarms"]}
    return [result]
