"""The main job end to end (what `make demo` runs): topics -> ingest -> fine-tune -> chat.

    python -m ui.demo                      # full demo, then serves the chat on http://localhost:8501
    python -m ui.demo --no-serve --train-samples 64 --max-steps 8   # reduced, for tests

Each stage reuses what an earlier run left (topics.json, the store, the newest adapter) and only does what is
missing; it prints what it did and how long it took. A failing stage stops the demo with that stage's own error.
Stages run as the project's own commands (subprocesses), exactly as a user would type them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from assistant.adapters import latest_adapter
from assistant.config import load_settings
from assistant.errors import LlamaMdError

REPO = Path(__file__).resolve().parents[1]
DATASET = "datasets/chatdoctor5k.json"


class StageFailed(LlamaMdError, RuntimeError):
    """A stage's command exited non-zero; its own output above says what was wrong and how to fix it."""


def stage(name: str, cmd: list[str] | None, timings: dict, skip_reason: str = "") -> None:
    """Run one stage's command (or report why it is skipped) and record its seconds."""
    started = time.perf_counter()
    if cmd is None:
        print(f"\n== {name}: reused ({skip_reason})", flush=True)
    else:
        print(f"\n== {name}: {' '.join(cmd)}", flush=True)
        if subprocess.run(cmd, cwd=REPO).returncode != 0:
            raise StageFailed(
                f"stage '{name}' failed (see its message above); fix it and run `make demo` again"
            )
    timings[name] = time.perf_counter() - started
    print(f"== {name}: {timings[name]:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--dataset", type=Path, help=f"patient-question dataset (default: $LLAMA_MD_DATA_DIR/{DATASET})")
    add(
        "--train-samples",
        type=int,
        default=1000,
        help="fine-tuning samples (default 1000: the README's real run, ~8 min of training here)",
    )
    add("--eval-samples", type=int, default=100, help="held-out samples for the eval loss (default 100)")
    add("--stop-prompts", type=int, default=20, help="held-out prompts for the stop rate (default 20)")
    add(
        "--sample-answers",
        type=int,
        default=3,
        help="base vs fine-tuned answers in the run's report (default 3)",
    )
    add("--max-steps", type=int, default=None, help="cap on fine-tuning optimizer steps (default: one epoch)")
    parser.add_argument("--port", type=int, default=8501, help="chat port (default 8501)")
    parser.add_argument("--no-serve", action="store_true", help="stop after building; don't start the chat")
    args = parser.parse_args(argv)
    settings = load_settings()
    py = sys.executable
    timings: dict[str, float] = {}
    data_dir = settings.data_dir
    dataset = args.dataset or (data_dir / DATASET if data_dir else None)
    if dataset is None or not dataset.is_file():
        where = (
            data_dir / "datasets"
            if data_dir
            else "a folder set as LLAMA_MD_DATA_DIR (with datasets/ and corpora/)"
        )
        print(
            f"demo: the patient-question dataset is missing: expected {DATASET} under {where}. "
            f"Fix: put chatdoctor5k.json there (see ../shared/README.md) or set LLAMA_MD_DATA_DIR.",
            file=sys.stderr,
        )
        return 1
    total = time.perf_counter()
    try:
        stage("doctor", [py, "-m", "assistant", "doctor"], timings)
        topics_json = settings.topics_dir / "topics.json"
        cmd = [py, "-m", "assistant", "topics", str(dataset)]
        stage("topics", None if topics_json.is_file() else cmd, timings, f"{topics_json} exists")
        specialty = load_settings().specialty
        print(f"specialty: {specialty}")
        stage("ingest", [py, "-m", "ingest", "--specialty", specialty], timings)
        adapter = latest_adapter(settings.runs_dir)
        cmd = [py, "-m", "finetune", "--preset", "smollm2-135m", "--dataset", str(dataset)]
        cmd += ["--max-samples", str(args.train_samples), "--eval-samples", str(args.eval_samples)]
        cmd += ["--stop-prompts", str(args.stop_prompts)]
        cmd += ["--sample-answers", str(args.sample_answers)]
        if args.max_steps:
            cmd += ["--max-steps", str(args.max_steps)]
        stage("fine-tune", None if adapter else cmd, timings, f"adapter {adapter}")
    except StageFailed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    built = time.perf_counter() - total
    print("\n| stage | seconds |\n|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| total (before the chat starts) | {built:.1f} |")
    if args.no_serve:
        return 0
    print(f"\nChat: http://localhost:{args.port}  (Ctrl+C to stop)", flush=True)
    os.execv(
        py,
        [
            py,
            "-m",
            "streamlit",
            "run",
            str(REPO / "ui" / "app.py"),
            "--server.port",
            str(args.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
