"""Red-flag screening: sensitivity and false-alarm rate on the written message sets, as a table.

    .venv/bin/python -m benchmarks.safety_bench

The sets and the scoring live in :mod:`assistant.evaluation.safety_suite` (also run by `llama-md evaluate`).
"""

from assistant.evaluation.safety_suite import DATA, SAFETY_SETS, evaluate


def main() -> None:
    print("| set | emergency | benign | sensitivity | false-alarm rate |")
    print("|---|---|---|---|---|")
    results = [evaluate(DATA / name) for name in SAFETY_SETS]
    for r in results:
        print(
            f"| {r['set']} | {r['emergency']} | {r['benign']} | {r['sensitivity']:.1%} | {r['false_alarm_rate']:.1%} |"
        )
    for r in results:
        for text in r["missed"]:
            print(f"missed ({r['set']}): {text}")
        for text in r["false_alarms"]:
            print(f"false alarm ({r['set']}): {text}")


if __name__ == "__main__":
    main()
