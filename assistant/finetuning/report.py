"""What a run leaves behind besides the adapter: metrics.jsonl, a progress bar, report.json / report.md, loss.png."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

REPORT_KEYS = (
    "eval_loss_before",
    "eval_loss_after",
    "perplexity_before",
    "perplexity_after",
    "stop_rate_before",
    "stop_rate_after",
    "train_samples",
    "train_tokens",
    "tokens_per_second",
    "precision",
    "nan_skipped_steps",
    "rollbacks",
    "seconds",
)


def perplexity(loss: float | None) -> float | None:
    """exp(loss), None when the loss is missing or non-finite."""
    return math.exp(loss) if loss is not None and math.isfinite(loss) and loss < 50 else None


class MetricsFile(TrainerCallback):
    """Append every log event (train and eval) as one JSON line to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            row = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
            with self.path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


class ProgressBar(TrainerCallback):
    """One tqdm bar over optimizer steps with the live loss, learning rate and tokens/s."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="fine-tune", unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(
                loss=f"{logs['loss']:.3f}",
                lr=f"{logs.get('learning_rate', 0):.2e}",
                tok_s=f"{logs.get('tokens_per_second', 0):.0f}",
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def plot_loss(log_history: list[dict], path: Path) -> Path | None:
    """Train and eval loss against optimizer step, saved as PNG; None when nothing was logged."""
    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r and "step" in r]
    evals = [(r["step"], r["eval_loss"]) for r in log_history if "eval_loss" in r and "step" in r]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="held-out loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token, completion only)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(run_dir: Path, report: dict, samples: list[dict]) -> tuple[Path, Path]:
    """Write ``report.json`` (``report`` + ``samples``) and ``report.md`` (figures + base vs fine-tuned answers)."""
    run_dir = Path(run_dir)
    json_path = run_dir / "report.json"
    json_path.write_text(json.dumps({**report, "samples": samples}, indent=2))

    def fmt(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = [f"# Fine-tune report: {report.get('preset')} on {report.get('dataset')}", ""]
    lines += ["| figure | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(report.get(k))} |" for k in REPORT_KEYS]
    lines += ["", "## Base vs fine-tuned answers", ""]
    for i, sample in enumerate(samples, 1):
        lines += [
            f"### {i}. {sample['question'][:300]}",
            "",
            f"**Base** ({'stopped' if sample['base_stopped'] else 'did not stop'}): {sample['base']}",
            "",
            f"**Fine-tuned** ({'stopped' if sample['tuned_stopped'] else 'did not stop'}): {sample['tuned']}",
            "",
            f"**Reference**: {sample['reference']}",
            "",
        ]
    md_path = run_dir / "report.md"
    md_path.write_text("\n".join(lines))
    return json_path, md_path
