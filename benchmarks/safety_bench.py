"""Red-flag triage: the current screen (rules + classifier) vs the old regex screen, on held-out messages.

    python -m benchmarks.safety_bench                          # the held-out test set shipped with the project
    python -m benchmarks.safety_bench --file other.jsonl --png docs/safety_confusion.png

Prints sensitivity, false-alarm rate, per-category recall, the misses and the screening time per message (p50 / p95,
embedding included) for both screens, and the screen's share of time to first token when ``--ttft-ms`` is given
(the chat's measured median, ``benchmarks/chat_bench.py``). The test set was written before the classifier was
trained, by a separate pass that did not see the training messages; its figures are reported as they are.
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
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    screener = load_screener()
    new = evaluate_screen(screener.screen_conversation, args.file)
    old = evaluate_screen(lambda turns: regex_screen_v1.screen(" ".join(turns)), args.file)
    print("| screen | sensitivity | false-alarm rate | p50 ms | p95 ms |")
    print("|---|---|---|---|---|")
    for name, r in (("rules + classifier (new)", new), ("regex only (old)", old)):
        print(
            f"| {name} | {r['sensitivity']:.3f} ({r['confusion'][0][0]}/{r['emergencies']}) | "
            f"{r['false_alarm_rate']:.3f} ({r['confusion'][1][0]}/{r['routine']}) | "
            f"{r['latency_ms']['p50']:.1f} | {r['latency_ms']['p95']:.1f} |"
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
