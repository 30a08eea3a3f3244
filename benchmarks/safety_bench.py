"""Red-flag screening: sensitivity and false-alarm rate on written message sets.

    .venv/bin/python benchmarks/safety_bench.py

Sets (benchmarks/data): red_flags.jsonl (70 emergency / 65 benign; the rules were written against it) and
red_flags_heldout.jsonl (30 / 30; written afterwards — its first run, before any rule change, is in the README).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assistant.safety import screen  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def evaluate(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    emergencies = [r for r in rows if r["emergency"]]
    benign = [r for r in rows if not r["emergency"]]
    missed = [r["text"] for r in emergencies if not screen(r["text"]).emergency]
    false_alarms = [r["text"] for r in benign if screen(r["text"]).emergency]
    return {
        "set": path.name,
        "emergency": len(emergencies),
        "benign": len(benign),
        "sensitivity": 1 - len(missed) / len(emergencies),
        "false_alarm_rate": len(false_alarms) / len(benign),
        "missed": missed,
        "false_alarms": false_alarms,
    }


if __name__ == "__main__":
    print("| set | emergency | benign | sensitivity | false-alarm rate |")
    print("|---|---|---|---|---|")
    results = [evaluate(DATA / name) for name in ("red_flags.jsonl", "red_flags_heldout.jsonl")]
    for r in results:
        print(
            f"| {r['set']} | {r['emergency']} | {r['benign']} | {r['sensitivity']:.1%} | {r['false_alarm_rate']:.1%} |"
        )
    for r in results:
        for text in r["missed"]:
            print(f"missed ({r['set']}): {text}")
        for text in r["false_alarms"]:
            print(f"false alarm ({r['set']}): {text}")
