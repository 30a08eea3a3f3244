"""How often the triage screen raises each level on real question datasets, and a sample of its emergencies.

    python -m benchmarks.safety_alarm_rate                                  # every set, up to 2,000 questions each
    python -m benchmarks.safety_alarm_rate --max-per-set 0 --sample-out /tmp/alarm_sample.jsonl   # every question

Sets (``$LLAMA_MD_DATA_DIR``, default ``../shared``; read, never copied into the project): ChatDoctor
(``datasets/chatdoctor5k.json``, field ``input``: patients' messages), MedQuAD (``datasets/medquad.jsonl``, field
``question``, unique questions: health-education questions from NIH sites), K-QA
(``eval/kqa/kqa_questions_w_answers.jsonl``, ``Question``: real patient questions) and TREC LiveQA-Med 2017
(``eval/liveqa_med2017/liveqa_med2017_test.jsonl``, ``message``: consumer questions to the NLM). They are mostly
routine, but not all: an emergency here is an alarm to read, not a false alarm by definition. So the emergencies go
to ``--sample-out`` (JSONL: set, index, urgency, category, trigger, text, and an empty ``label`` for a helper who
reads and labels them); that file holds dataset text, so keep it out of the repository.

Printed: per set, the share of questions given emergency, urgent and routine, and the screen time per question.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SETS = {
    "ChatDoctor": ("datasets/chatdoctor5k.json", "input"),
    "MedQuAD": ("datasets/medquad.jsonl", "question"),
    "K-QA": ("eval/kqa/kqa_questions_w_answers.jsonl", "Question"),
    "LiveQA-Med 2017": ("eval/liveqa_med2017/liveqa_med2017_test.jsonl", "message"),
}


def read_questions(path: Path, field: str) -> list[str]:
    """The non-empty, unique values of ``field`` in a JSON list or JSONL file, in file order."""
    text = path.read_text(encoding="utf-8")
    rows = (
        json.loads(text)
        if path.suffix == ".json"
        else [json.loads(x) for x in text.splitlines() if x.strip()]
    )
    return list(
        dict.fromkeys(str(r.get(field) or "").strip() for r in rows if str(r.get(field) or "").strip())
    )


def main() -> None:
    from assistant.chat.safety import load_screener
    from assistant.config import load_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default: the settings' data_dir)"
    )
    parser.add_argument(
        "--max-per-set",
        type=int,
        default=2000,
        help="questions per set, a seeded sample; 0 = all (default 2000)",
    )
    parser.add_argument(
        "--sample-size", type=int, default=40, help="emergencies written to --sample-out (40)"
    )
    parser.add_argument("--sample-out", type=Path, default=None, help="JSONL for the emergency sample (none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = load_settings()
    data_dir = args.data_dir or settings.data_dir
    if data_dir is None or not Path(data_dir).is_dir():
        raise SystemExit(
            f"no data folder at {data_dir!r}: set LLAMA_MD_DATA_DIR or pass --data-dir ../shared"
        )
    screener = load_screener(settings)
    screener.screen("warm-up message")
    rng = np.random.default_rng(args.seed)
    print("| set | questions | emergency | urgent | routine | any banner | screen ms p50 / p95 |")
    print("|---|---|---|---|---|---|---|")
    emergencies = []
    for name, (rel, field) in SETS.items():
        path = Path(data_dir) / rel
        if not path.is_file():
            print(f"| {name} | missing: {path} | | | | | |")
            continue
        questions = read_questions(path, field)
        if args.max_per_set and len(questions) > args.max_per_set:
            keep = np.sort(rng.choice(len(questions), size=args.max_per_set, replace=False))
            questions = [questions[i] for i in keep]
        counts, ms = {"emergency": 0, "urgent": 0, "routine": 0}, []
        for i, question in enumerate(questions):
            t0 = time.perf_counter()
            result = screener.screen(question)
            ms.append((time.perf_counter() - t0) * 1000)
            counts[result.urgency] += 1
            if result.urgency == "emergency":
                emergencies.append(
                    {"set": name, "index": i, "urgency": result.urgency, "category": result.category,
                     "trigger": result.trigger, "text": question, "label": ""}
                )  # fmt: skip
        n = len(questions)
        share = {k: v / n for k, v in counts.items()}
        print(
            f"| {name} | {n} | {share['emergency']:.1%} ({counts['emergency']}) | {share['urgent']:.1%} "
            f"({counts['urgent']}) | {share['routine']:.1%} | {1 - share['routine']:.1%} | "
            f"{np.percentile(ms, 50):.1f} / {np.percentile(ms, 95):.1f} |",
            flush=True,
        )
    if args.sample_out:
        take = rng.permutation(len(emergencies))[: args.sample_size]
        sample = [emergencies[i] for i in sorted(take)]
        args.sample_out.parent.mkdir(parents=True, exist_ok=True)
        args.sample_out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample))
        print(f"\nwrote {len(sample)} of {len(emergencies)} emergencies to {args.sample_out}")


if __name__ == "__main__":
    main()
