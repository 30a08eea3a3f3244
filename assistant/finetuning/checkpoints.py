"""Which checkpoint ``--resume`` may continue from: the newest *complete* one.

Hugging Face's Trainer writes a checkpoint's files one after another and ``trainer_state.json`` last, so a kill or
a full disk during a save leaves ``checkpoint-N`` without it (or with a truncated weights or optimizer file).
Resuming such a folder fails with a traceback. :func:`find_resumable_checkpoint` therefore walks the
``checkpoint-<step>`` folders from the newest step down, checks that every file a resume reads is present and
loadable, logs each one it skips and why, and returns the first complete one. Folders whose name is not exactly
``checkpoint-<integer>`` (``checkpoint-5-old``, ``checkpoint-tmp``) are ignored, never sorted.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
#: Weights of a LoRA checkpoint, then of a full fine-tune (single file or sharded index).
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")


class RunFolderError(LlamaMdError, ValueError):
    """The output folder holds another run (or nothing to resume); the message says which flag to use."""


class CheckpointWriteError(LlamaMdError, OSError):
    """Training could not write to the run folder (disk full, quota, permissions); resume once fixed."""


@dataclass
class SkippedCheckpoint:
    """A checkpoint ``--resume`` passed over: its folder and why."""

    path: Path
    reason: str


def checkpoint_steps(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-<step>`` folder in ``checkpoints_dir``, newest step first.

    Names with anything after the step (``checkpoint-5-old``) are not checkpoints and are left out.
    """
    found = []
    for path in Path(checkpoints_dir).glob("checkpoint-*"):
        match = CHECKPOINT_NAME.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` can't be resumed from (the first missing or unreadable file), or None when it is complete.

    Complete means: ``trainer_state.json`` parses and has ``global_step``; the weights (``adapter_model.safetensors``
    or ``model.safetensors``) open with a full header; ``optimizer.pt`` and ``scheduler.pt`` load with
    ``torch.load(weights_only=True)``, as the Trainer will load them.
    """
    import torch
    from safetensors import safe_open

    state = path / STATE_FILE
    if not state.is_file():
        return f"{STATE_FILE} is missing (the save did not finish)"
    try:
        global_step = json.loads(state.read_text())["global_step"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{STATE_FILE} is unreadable ({exc.__class__.__name__}: {exc})"
    if not isinstance(global_step, int):
        return f"{STATE_FILE} has no integer global_step"
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        return f"no weights file ({' / '.join(WEIGHT_FILES)})"
    if weights.suffix == ".safetensors":
        try:
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except Exception as exc:  # safetensors raises its own error type for truncated files
            return f"{weights.name} is truncated or corrupt ({exc})"
    for name in (OPTIMIZER_FILE, SCHEDULER_FILE):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        try:
            torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated zip raises RuntimeError, pickle errors vary
            return f"{name} is truncated or corrupt ({exc.__class__.__name__}: {exc})"
    return None


def find_resumable_checkpoint(checkpoints_dir: Path) -> tuple[Path | None, list[SkippedCheckpoint]]:
    """The newest complete checkpoint in ``checkpoints_dir`` and the newer ones skipped on the way.

    Returns:
        ``(checkpoint or None, skipped)``; each skipped one is also logged as a warning with its reason.
    """
    skipped: list[SkippedCheckpoint] = []
    steps = {path for _, path in checkpoint_steps(checkpoints_dir)}
    for stray in sorted(set(Path(checkpoints_dir).glob("checkpoint-*")) - steps):
        logger.warning(
            "--resume: %s is not a checkpoint-<step> folder and is ignored; move it out of %s to keep it "
            "(Hugging Face's save_total_limit rotation may count it as a checkpoint and delete it)",
            stray.name,
            checkpoints_dir,
        )
    for _, path in checkpoint_steps(checkpoints_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        logger.warning("--resume: skipping %s: %s", path, problem)
        skipped.append(SkippedCheckpoint(path, problem))
    return None, skipped


def write_failure(exc: OSError, checkpoints_dir: Path, step: int) -> CheckpointWriteError:
    """The error to raise when writing a checkpoint (or a log) failed: the file, the last complete checkpoint
    (left as it was: a failed save only ever touches the newer folder it was writing) and the fix."""
    target = exc.filename or checkpoints_dir
    last, _ = find_resumable_checkpoint(checkpoints_dir)
    kept = f"the last complete checkpoint, {last}, is intact" if last else "no checkpoint is complete yet"
    return CheckpointWriteError(
        f"Could not write {target} at step {step}: {exc.strerror or exc}; {kept}. Fix: free disk space (or use an "
        "--output-dir on a disk with room), then re-run the same command with --resume."
    )
