"""Guards that keep a run's weights good: non-finite steps are skipped and rolled back; signals checkpoint.

:class:`NanGuard` (a ``transformers.TrainerCallback``; the trainer reports each micro-batch loss to it):

* before every optimizer step, a non-finite loss in any micro-batch of the step or a non-finite gradient norm
  drops that step's gradients, so the optimizer skips it (counted in ``skipped_steps``);
* after ``patience`` (K) consecutive bad steps it rolls back: the trainable weights return to the last
  checkpoint saved after a good step (kept in memory: LoRA weights are a few MB), the optimizer's moments are
  cleared and the learning rate is halved;
* after ``max_rollbacks`` (M) rollbacks it stops the run (``stop_reason`` says why); the caller then saves the
  last good weights and exits with an error.

:class:`SignalCheckpoint`: SIGINT / SIGTERM during training ask the Trainer to save a checkpoint at the end of
the current step and stop; a second signal exits at once (default handler).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from pathlib import Path

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

GUARD_FILE = "llama-md-guard.json"


def _trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def grads_finite(model) -> bool:
    """True when every gradient of a trainable parameter is finite (no NaN / inf)."""
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for _, p in _trainable(model))


def weights_finite(model) -> bool:
    """True when every trainable weight is finite."""
    return all(bool(torch.isfinite(p).all()) for _, p in _trainable(model))


class NanGuard(TrainerCallback):
    """Skip non-finite steps, roll back after ``patience`` in a row, stop after ``max_rollbacks``."""

    def __init__(self, patience: int = 3, max_rollbacks: int = 3) -> None:
        self.patience, self.max_rollbacks = patience, max_rollbacks
        self.skipped_steps = 0
        self.rollbacks = 0
        self.consecutive = 0
        self.skipped_at: list[int] = []
        self.rollback_at: list[int] = []
        self.stop_reason: str | None = None
        self._loss_bad = False
        self._snapshot: dict[str, torch.Tensor] | None = None
        self._snapshot_step = 0

    # Reported by the trainer for every micro-batch ------------------------------------------------------
    def observe_loss(self, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            self._loss_bad = True

    # State that survives --resume -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        keys = ("skipped_steps", "rollbacks", "consecutive", "skipped_at", "rollback_at")
        return {k: getattr(self, k) for k in keys}

    def load(self, checkpoint_dir: Path) -> None:
        path = Path(checkpoint_dir) / GUARD_FILE
        if path.is_file():
            for key, value in json.loads(path.read_text()).items():
                setattr(self, key, value)

    def take_snapshot(self, model, step: int) -> None:
        self._snapshot = {n: p.detach().to("cpu", copy=True) for n, p in _trainable(model)}
        self._snapshot_step = step

    def restore_snapshot(self, model) -> int:
        """Put the last good trainable weights back; returns the step they are from."""
        if self._snapshot is not None:
            with torch.no_grad():
                for name, param in _trainable(model):
                    param.copy_(self._snapshot[name].to(param.device))
        return self._snapshot_step

    # Callback events --------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.take_snapshot(model, state.global_step)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        bad_loss, self._loss_bad = self._loss_bad, False
        if not bad_loss and grads_finite(model):
            self.consecutive = 0
            return
        for _, param in _trainable(model):
            param.grad = None  # the optimizer skips parameters without a gradient
        step = state.global_step + 1
        self.skipped_steps += 1
        self.consecutive += 1
        self.skipped_at.append(step)
        logger.warning(
            "Step %d: non-finite %s; optimizer step skipped (%d in a row, %d in all)",
            step,
            "loss" if bad_loss else "gradient norm",
            self.consecutive,
            self.skipped_steps,
        )

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if self.consecutive < self.patience:
            return
        if self.rollbacks >= self.max_rollbacks:
            self.stop_reason = (
                f"{self.consecutive} non-finite steps in a row at step {state.global_step} after "
                f"{self.rollbacks} rollbacks (limit --max-rollbacks {self.max_rollbacks}); stopped. The last good "
                f"weights (step {self._snapshot_step}) were kept. Fix: lower --learning-rate, use --precision "
                "fp32 or bf16 instead of fp16, or check the data for extreme sequences."
            )
            logger.error(self.stop_reason)
            self.restore_snapshot(model)
            control.should_training_stop = True
            return
        good_step = self.restore_snapshot(model)
        inner = getattr(optimizer, "optimizer", optimizer)
        inner.state.clear()
        for group in inner.param_groups:
            group["lr"] *= 0.5
        if lr_scheduler is not None and hasattr(lr_scheduler, "base_lrs"):
            lr_scheduler.base_lrs = [lr * 0.5 for lr in lr_scheduler.base_lrs]
        self.rollbacks += 1
        self.rollback_at.append(state.global_step)
        self.consecutive = 0
        logger.warning(
            "Rollback %d/%d at step %d: weights of step %d restored, optimizer state cleared, learning rate halved",
            self.rollbacks,
            self.max_rollbacks,
            state.global_step,
            good_step,
        )

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.consecutive == 0:
            self.take_snapshot(model, state.global_step)
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir() and args.process_index == 0:
            (checkpoint / GUARD_FILE).write_text(json.dumps(self.state_dict()))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs:
            logs["nan_skipped_steps"] = self.skipped_steps
            logs["rollbacks"] = self.rollbacks
            if not math.isfinite(logs["loss"]):
                logs["loss"] = float("nan")


class SignalCheckpoint(TrainerCallback):
    """On SIGINT / SIGTERM: checkpoint at the end of the current step, then stop training."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.received = signum
        logger.warning(
            "%s received: saving a checkpoint after this step, then stopping", signal.Signals(signum).name
        )
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # a second signal acts at once

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
