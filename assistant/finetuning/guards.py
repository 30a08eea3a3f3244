"""Guards that keep a run's weights good: non-finite steps are skipped and rolled back; signals checkpoint.

:class:`NanGuard` (a ``transformers.TrainerCallback``; the trainer reports each micro-batch loss to it):

* before every optimizer step, a non-finite loss in any micro-batch of the step or a non-finite gradient drops
  that step's gradients, so the optimizer skips it, and the learning-rate scheduler's advance for that step is
  undone (counted in ``skipped_steps``). In fp16, a non-finite gradient under a finite loss is the GradScaler's
  ordinary overflow: the scaler skips that step and lowers its scale itself, and it is not a NaN event;
* a :class:`Snapshot` (trainable weights, optimizer state, scheduler state, step) is taken when training starts
  and at every checkpoint saved after a good step (in CPU memory: LoRA weights and their Adam moments are a few
  MB);
* after ``patience`` (K) consecutive bad steps it rolls back: weights, optimizer state (Adam's moments and step
  counts) and scheduler state return to the snapshot's, then the learning rate is halved. The Trainer's
  ``global_step`` keeps counting the steps of data consumed (the loop and the checkpoint names rely on it);
  the good steps the rollback undid are counted in ``rolled_back_steps``, and ``applied_steps`` is the number
  of optimizer updates the weights actually hold;
* after ``max_rollbacks`` (M) rollbacks it restores the snapshot and stops the run (``stop_reason`` says why);
  the caller then saves those last good weights and exits with an error.

:class:`SignalCheckpoint`: SIGINT / SIGTERM during training ask the Trainer to save a checkpoint at the end of
the current step and stop; a second signal exits at once (default handler).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

GUARD_FILE = "llama-md-guard.json"
#: Factor applied to the learning rate at every rollback.
ROLLBACK_LR_FACTOR = 0.5


def _trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def grads_finite(model) -> bool:
    """True when every gradient of a trainable parameter is finite (no NaN / inf)."""
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for _, p in _trainable(model))


def weights_finite(model) -> bool:
    """True when every trainable weight is finite."""
    return all(bool(torch.isfinite(p).all()) for _, p in _trainable(model))


def _to_cpu(value):
    """A deep copy of a (nested) state dict with every tensor cloned to CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _inner(optimizer):
    """The torch optimizer under accelerate's wrapper (or the optimizer itself)."""
    return getattr(optimizer, "optimizer", optimizer)


def _load_scheduler(lr_scheduler, state: dict, optimizer) -> None:
    """Load a scheduler state and put its learning rates into the optimizer's groups (``load_state_dict``
    alone leaves the groups at the rates of the undone steps)."""
    lr_scheduler.load_state_dict(_to_cpu(state))
    last = getattr(lr_scheduler, "_last_lr", None)
    if optimizer is not None and last:
        for group, lr in zip(_inner(optimizer).param_groups, last, strict=False):
            group["lr"] = lr


@dataclass
class Snapshot:
    """Everything a rollback restores, in CPU memory."""

    step: int
    """``global_step`` when it was taken."""
    applied_steps: int
    """Optimizer updates held by ``weights``."""
    weights: dict[str, torch.Tensor]
    """Trainable parameters by name."""
    optimizer: dict | None
    """``optimizer.state_dict()`` (moments, step counts, param groups); None when no optimizer was given."""
    scheduler: dict | None
    """``lr_scheduler.state_dict()``; None when no scheduler was given."""


class NanGuard(TrainerCallback):
    """Skip non-finite steps, roll back after ``patience`` in a row, stop after ``max_rollbacks``."""

    def __init__(self, patience: int = 3, max_rollbacks: int = 3) -> None:
        self.patience, self.max_rollbacks = patience, max_rollbacks
        self.skipped_steps = 0
        self.rollbacks = 0
        self.consecutive = 0
        self.skipped_at: list[int] = []
        self.rollback_at: list[int] = []
        self.rolled_back_steps = 0
        self.applied_steps = 0
        self.scaler_skipped_steps = 0
        self.stop_reason: str | None = None
        self.snapshot: Snapshot | None = None
        self._loss_bad = False
        self._skipping = False
        self._scheduler_before: dict | None = None

    # Reported by the trainer for every micro-batch ------------------------------------------------------
    def observe_loss(self, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            self._loss_bad = True

    # State that survives --resume -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        keys = (
            "skipped_steps",
            "rollbacks",
            "consecutive",
            "skipped_at",
            "rollback_at",
            "rolled_back_steps",
            "applied_steps",
            "scaler_skipped_steps",
        )
        return {k: getattr(self, k) for k in keys}

    def load(self, checkpoint_dir: Path) -> None:
        path = Path(checkpoint_dir) / GUARD_FILE
        if path.is_file():
            for key, value in json.loads(path.read_text()).items():
                setattr(self, key, value)

    def take_snapshot(self, model, step: int, optimizer=None, lr_scheduler=None) -> Snapshot:
        """Keep the trainable weights, optimizer and scheduler state and ``step`` in CPU memory."""
        self.snapshot = Snapshot(
            step=step,
            applied_steps=self.applied_steps,
            weights={n: p.detach().to("cpu", copy=True) for n, p in _trainable(model)},
            optimizer=_to_cpu(_inner(optimizer).state_dict()) if optimizer is not None else None,
            scheduler=_to_cpu(lr_scheduler.state_dict()) if lr_scheduler is not None else None,
        )
        return self.snapshot

    def restore_snapshot(self, model, optimizer=None, lr_scheduler=None) -> int:
        """Put the snapshot's weights (and, when given, optimizer and scheduler state) back.

        Returns:
            The ``global_step`` the snapshot is from (0 when none was taken).
        """
        snap = self.snapshot
        if snap is None:
            return 0
        with torch.no_grad():
            for name, param in _trainable(model):
                param.copy_(snap.weights[name].to(param.device))
        if optimizer is not None and snap.optimizer is not None:
            _inner(optimizer).load_state_dict(_to_cpu(snap.optimizer))  # torch moves the state to the params
        if lr_scheduler is not None and snap.scheduler is not None:
            _load_scheduler(lr_scheduler, snap.scheduler, optimizer)
        self.applied_steps = snap.applied_steps
        return snap.step

    def _lower_learning_rate(self, optimizer, lr_scheduler) -> None:
        if lr_scheduler is not None and hasattr(lr_scheduler, "base_lrs"):
            lr_scheduler.base_lrs = [lr * ROLLBACK_LR_FACTOR for lr in lr_scheduler.base_lrs]
            if getattr(lr_scheduler, "_last_lr", None):
                lr_scheduler._last_lr = [lr * ROLLBACK_LR_FACTOR for lr in lr_scheduler._last_lr]
        if optimizer is not None:
            for group in _inner(optimizer).param_groups:
                group["lr"] *= ROLLBACK_LR_FACTOR

    # Callback events --------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        self.take_snapshot(model, state.global_step, optimizer, lr_scheduler)

    def on_pre_optimizer_step(self, args, state, control, model=None, lr_scheduler=None, **kwargs):
        bad_loss, self._loss_bad = self._loss_bad, False
        self._skipping = False
        if not bad_loss and grads_finite(model):
            return
        if not bad_loss and getattr(args, "fp16", False):
            # the GradScaler's overflow: it skips this step and lowers its scale; not a NaN event
            self.scaler_skipped_steps += 1
            logger.debug("Step %d: fp16 gradient overflow; the GradScaler skips it", state.global_step + 1)
            return
        for _, param in _trainable(model):
            param.grad = None  # the optimizer skips parameters without a gradient
        self._skipping = True
        self._scheduler_before = _to_cpu(lr_scheduler.state_dict()) if lr_scheduler is not None else None
        step = state.global_step + 1
        self.skipped_steps += 1
        self.consecutive += 1
        self.skipped_at.append(step)
        logger.warning(
            "Step %d: non-finite %s; optimizer step skipped (%d in a row, %d in all)",
            step,
            "loss" if bad_loss else "gradient",
            self.consecutive,
            self.skipped_steps,
        )

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if not self._skipping:
            self.consecutive = 0
            self.applied_steps += 1
            return
        self._skipping = False
        if lr_scheduler is not None and self._scheduler_before is not None:
            _load_scheduler(lr_scheduler, self._scheduler_before, optimizer)  # a skipped step keeps its rate
        if self.consecutive < self.patience:
            return
        snap_step = self.snapshot.step if self.snapshot else 0
        undone = state.global_step - snap_step
        if self.rollbacks >= self.max_rollbacks:
            self.stop_reason = (
                f"{self.consecutive} non-finite steps in a row at step {state.global_step} after "
                f"{self.rollbacks} rollbacks (limit --max-rollbacks {self.max_rollbacks}); stopped. The last good "
                f"weights (step {snap_step}) were kept. Fix: lower --learning-rate, use --precision "
                "fp32 or bf16 instead of fp16, or check the data for extreme sequences."
            )
            logger.error(self.stop_reason)
            self.restore_snapshot(model, optimizer, lr_scheduler)
            self.rolled_back_steps += undone
            control.should_training_stop = True
            return
        discarded = self.applied_steps - self.snapshot.applied_steps if self.snapshot else 0
        self.restore_snapshot(model, optimizer, lr_scheduler)
        self._lower_learning_rate(optimizer, lr_scheduler)
        self.rolled_back_steps += undone
        self.rollbacks += 1
        self.rollback_at.append(state.global_step)
        self.consecutive = 0
        logger.warning(
            "Rollback %d/%d at step %d: weights, optimizer and scheduler state of step %d restored (%d steps "
            "undone, %d of them good), learning rate x%s",
            self.rollbacks,
            self.max_rollbacks,
            state.global_step,
            snap_step,
            undone,
            discarded,
            ROLLBACK_LR_FACTOR,
        )
        # the restored state with the lower rate is the next rollback's starting point
        self.take_snapshot(model, state.global_step, optimizer, lr_scheduler)

    def on_save(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if self.consecutive == 0:
            self.take_snapshot(model, state.global_step, optimizer, lr_scheduler)
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
