"""The main job end to end (what `make demo` runs): doctor -> topics -> ingest -> fine-tune -> chat.

    llama-md demo                      # full demo, then serves the chat on http://localhost:8501
    llama-md demo --no-serve --train-samples 64 --max-steps 8   # reduced, for tests

Each stage reuses what an earlier run left (topics.json, the store, the newest adapter) and only does what is
missing; it prints what it did and how long it took. A failing stage stops the demo with that stage's own error.
Stages run as the project's own commands (`python -m assistant STAGE`, subprocesses), as a user would type them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.adapters import latest_adapter
from assistant.cli.ui import UiConfig, streamlit_command
from assistant.config import Settings, load_settings
from assistant.errors import LlamaMdError

DATASET = "datasets/chatdoctor5k.json"


class StageFailed(LlamaMdError, RuntimeError):
    """The demo can't go on: a stage's command exited non-zero (its own output above says what was wrong and how
    to fix it), or the patient-question dataset is missing."""

    exit_code = 1


@dataclass
class DemoConfig:
    settings: Settings
    dataset: Path
    train_samples: int = 1000  # the real run in docs/results.md, ~8 min of training on 2 CPU cores
    eval_samples: int = 100
    stop_prompts: int = 20
    sample_answers: int = 3
    max_steps: int | None = None  # None: one epoch
    port: int = 8501
    serve: bool = True


def stage(name: str, cmd: list[str] | None, timings: dict, skip_reason: str = "") -> None:
    """Run one stage's command (or report why it is skipped) and record its seconds."""
    started = time.perf_counter()
    if cmd is None:
        print(f"\n== {name}: reused ({skip_reason})", flush=True)
    else:
        print(f"\n== {name}: {' '.join(cmd)}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise StageFailed(
                f"stage '{name}' failed (see its message above); fix it and run `make demo` again"
            )
    timings[name] = time.perf_counter() - started
    print(f"== {name}: {timings[name]:.1f} s", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoConfig
    add = parser.add_argument
    add("--dataset", type=Path, help=f"patient-question dataset (default: $LLAMA_MD_DATA_DIR/{DATASET})")
    add("--train-samples", type=int, default=d.train_samples, help="fine-tuning samples (default 1000)")
    add(
        "--eval-samples",
        type=int,
        default=d.eval_samples,
        help="held-out samples for the eval loss (default 100)",
    )
    add(
        "--stop-prompts",
        type=int,
        default=d.stop_prompts,
        help="held-out prompts for the stop rate (default 20)",
    )
    add(
        "--sample-answers",
        type=int,
        default=d.sample_answers,
        help="base vs fine-tuned answers in the run's report (default 3)",
    )
    add("--max-steps", type=int, help="cap on fine-tuning optimizer steps (default: one epoch)")
    add("--port", type=int, default=d.port, help="chat port (default 8501)")
    add("--no-serve", action="store_true", help="stop after building; don't start the chat")


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """Raises StageFailed when the patient-question dataset is not where it should be."""
    settings = load_settings()
    data_dir = settings.data_dir
    dataset = args.dataset or (data_dir / DATASET if data_dir else None)
    if dataset is None or not dataset.is_file():
        where = (
            data_dir / "datasets"
            if data_dir
            else "a folder set as LLAMA_MD_DATA_DIR (with datasets/ and corpora/)"
        )
        raise StageFailed(
            f"the patient-question dataset is missing: expected {DATASET} under {where}. "
            "Fix: put chatdoctor5k.json there (see ../shared/README.md) or set LLAMA_MD_DATA_DIR."
        )
    return DemoConfig(
        settings,
        dataset,
        args.train_samples,
        args.eval_samples,
        args.stop_prompts,
        args.sample_answers,
        args.max_steps,
        args.port,
        not args.no_serve,
    )


def main(cfg: DemoConfig) -> int:
    """Run the stages that are not done yet, print their seconds, then serve the chat (unless ``serve`` is off).

    Raises:
        StageFailed: a stage's command failed (its own error was printed above).
    """
    settings, py = cfg.settings, [sys.executable, "-m", "assistant"]
    timings: dict[str, float] = {}
    total = time.perf_counter()
    stage("doctor", [*py, "doctor"], timings)
    topics_json = settings.topics_dir / "topics.json"
    cmd = [*py, "topics", str(cfg.dataset)]
    stage("topics", None if topics_json.is_file() else cmd, timings, f"{topics_json} exists")
    specialty = load_settings().specialty
    print(f"specialty: {specialty}")
    stage("ingest", [*py, "ingest", "--specialty", specialty], timings)
    adapter = latest_adapter(settings.runs_dir)
    cmd = [*py, "finetune", "--preset", "smollm2-135m", "--dataset", str(cfg.dataset)]
    cmd += ["--max-samples", str(cfg.train_samples), "--eval-samples", str(cfg.eval_samples)]
    cmd += ["--stop-prompts", str(cfg.stop_prompts), "--sample-answers", str(cfg.sample_answers)]
    if cfg.max_steps:
        cmd += ["--max-steps", str(cfg.max_steps)]
    stage("fine-tune", None if adapter else cmd, timings, f"adapter {adapter}")
    built = time.perf_counter() - total
    print("\n| stage | seconds |\n|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| total (before the chat starts) | {built:.1f} |")
    if not cfg.serve:
        return 0
    ui = UiConfig(port=cfg.port)
    print(f"\nChat: http://localhost:{ui.port}  (Ctrl+C to stop)", flush=True)
    command = streamlit_command(ui)
    os.execv(command[0], command)
    return 1
