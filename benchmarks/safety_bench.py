"""Triage: the graded screen (rules + classifier) vs the old regex screen, on a held-out message file.

    python -m benchmarks.safety_bench                          # the held-out graded test set (triage_test.jsonl)
    python -m benchmarks.safety_bench --file assistant/evaluation/data/red_flags_test.jsonl --ttft-ms 1193
    python -m benchmarks.safety_bench --png docs/safety_confusion.png --json

Prints sensitivity per level, false alarms at the emergency level and any banner on routine messages, buried and
multi-turn figures, the screening time per message and for 1,000-character messages (p50 / p95, embedding included)
for both screens (the regex screen knows one level: its flags count as emergency), the screen's share of time to
first token when ``--ttft-ms`` is given (the chat's measured median, ``benchmarks/chat_bench.py``), then the full
report: confusion by level, per kind and category, every miss and false alarm. Each test set was written before the
classifier it scores was trained, by a separate pass that did not see the training messages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.chat.safety import load_screener
from assistant.evaluation.safety_suite import TEST_FILE, evaluate_screen, format_report, write_confusion_png
from benchmarks.baselines import regex_screen_v1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--file", type=Path, default=TEST_FILE, help="message file (JSONL; default: held-out set)"
    )
    parser.add_argument("--png", type=Path, default=None, help="write the confusion matrix PNG here")
    parser.add_argument(
        "--ttft-ms", type=float, default=None, help="median time to first token to compare with"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too (default: no)")
    args = parser.parse_args()
    screener = load_screener()
    new = evaluate_screen(screener.screen_conversation, args.file)
    old = evaluate_screen(lambda turns: regex_screen_v1.screen(" ".join(turns)), args.file, long_messages=0)
    print("| screen | emergency sensitivity | emergency-or-urgent | routine -> emergency | routine, any banner | "
          "buried | p95 ms | p95 ms, 1,000 chars |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in (("rules + classifier, graded (new)", new), ("regex only (old)", old)):
        long = r["long_message_ms"]["p95"] if r["long_message_ms"] else float("nan")
        print(
            f"| {name} | {r['emergency_sensitivity']:.3f} | {r['alarm_sensitivity']:.3f} | "
            f"{r['routine_emergency_rate']:.3f} | {r['routine_banner_rate']:.3f} | "
            f"{r['buried']['caught']}/{r['buried']['alarms']} | {r['latency_ms']['p95']:.1f} | {long:.1f} |"
        )
    if args.ttft_ms:
        share = new["latency_ms"]["p50"] / args.ttft_ms
        print(
            f"screen p50 {new['latency_ms']['p50']:.1f} ms = {share:.1%} of a {args.ttft_ms:.0f} ms first token"
        )
    print()
    print(format_report(new))
    if args.png:
        print(f"\nwrote {write_confusion_png(new, args.png)}")
    if args.json:
        print(json.dumps({"new": new, "old": old}, indent=2))


if __name__ == "__main__":
    main()
