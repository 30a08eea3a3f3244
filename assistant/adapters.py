"""The adapter format shared by fine-tuning and chat: one source of truth for template, system prompt, stops.

A fine-tune run folder (``$LLAMA_MD_HOME/runs/<preset>-<time>/``) holds ``adapter/`` with:

* peft files: ``adapter_config.json``, ``adapter_model.safetensors`` (absent for ``--full``; then the folder is a
  full model with ``model.safetensors``),
* the tokenizer files, whose ``chat_template`` is the one used in training,
* ``llama-md.json`` (:class:`AdapterInfo`): base model id, preset, system prompt, chat template, stop tokens.

The chat reads exactly these, so a model tuned under one system prompt is served under the same one.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

INFO_FILE = "llama-md.json"

#: The ChatDoctor instruction (https://github.com/Kent0n-Li/ChatDoctor): the system prompt of fine-tuning when the
#: dataset has none, and of the chat without an adapter, so the base model is asked the way the tuned one was.
DEFAULT_SYSTEM_PROMPT = (
    "If you are a doctor, please answer the medical questions based on the patient's description."
)


class AdapterError(LlamaMdError, ValueError):
    """An adapter folder is missing, incomplete or belongs to another base model."""


@dataclass
class AdapterInfo:
    """What travels with an adapter so inference reproduces training's prompt format."""

    base_model: str
    """Hub id or folder of the base model the adapter was trained on."""
    preset: str
    """Preset name used for training (``finetune --list-presets``)."""
    system_prompt: str
    """System prompt used in every training example."""
    chat_template: str
    """Jinja chat template used to render training examples."""
    stop_tokens: list[str] = field(default_factory=list)
    """Tokens that end a turn (e.g. ``<|im_end|>``, ``<|eot_id|>``); generation stops at any of them."""
    max_seq_length: int = 1024
    """Maximum sequence length in training, tokens."""
    full_model: bool = False
    """True when ``adapter/`` is a full fine-tuned model rather than a LoRA adapter."""
    task: str = "chat"
    """Training task (``finetune --task``): chat, or rag (trained on the chat's numbered-passage prompts)."""

    def save(self, adapter_dir: Path) -> Path:
        path = Path(adapter_dir) / INFO_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, adapter_dir: Path) -> AdapterInfo:
        """Read ``<adapter_dir>/llama-md.json``.

        Raises:
            AdapterError: the folder or file is missing or malformed, with the command that makes one.
        """
        path = Path(adapter_dir) / INFO_FILE
        if not path.is_file():
            raise AdapterError(
                f"{adapter_dir} is not a llama-md adapter (no {INFO_FILE}). "
                "Fix: pass the adapter/ folder of a run made by `python -m finetune`, or train one."
            )
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise AdapterError(
                f"{path} is malformed ({exc}); re-run the fine-tune or restore the file."
            ) from exc


REPORT_FILE = "report.json"
#: Weights a finished run's ``adapter/`` holds: a LoRA adapter, else a full model (``--full``).
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")


@dataclass
class AdapterChoice:
    """What ``adapter="auto"`` picked: the adapter folder (None: the base model) and a notice per run skipped."""

    adapter_dir: Path | None
    notices: list[str] = field(default_factory=list)


def _runs_newest_first(runs_dir: Path) -> list[Path]:
    """``adapter/`` folders under ``runs_dir``, newest first (by their ``llama-md.json``'s time, else the folder's)."""

    def stamp(adapter_dir: Path) -> float:
        info = adapter_dir / INFO_FILE
        return (info if info.is_file() else adapter_dir).stat().st_mtime

    return sorted((p for p in Path(runs_dir).glob("*/adapter") if p.is_dir()), key=stamp, reverse=True)


def run_problem(adapter_dir: Path, base_model: str | None = None) -> str | None:
    """Why the run of ``adapter_dir`` must not be served, or None when it may be.

    A run may be served when: its ``llama-md.json`` loads; it was trained on ``base_model`` (when given); the
    run's ``report.json`` says it completed (``status`` "completed", or a report without status, as runs before
    it was recorded) with a finite held-out loss after training (when measured) and a stop rate not below the
    base model's (when both were measured); its weights file opens with a complete safetensors header (a
    truncated file does not).
    """
    from safetensors import safe_open

    try:
        info = AdapterInfo.load(adapter_dir)
    except AdapterError as exc:
        return str(exc)
    if base_model is not None and info.base_model != base_model:
        return f"trained on {info.base_model!r}, but the generator is {base_model!r}"
    report_path = adapter_dir.parent / REPORT_FILE
    if not report_path.is_file():
        return f"no {REPORT_FILE}: the run did not finish (interrupted, diverged or still training)"
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError) as exc:
        return f"{report_path} is unreadable ({exc})"
    status = report.get("status", "completed")
    if status != "completed":
        return f"its report says {status}: {report.get('stop_reason') or 'no reason recorded'}"
    loss = report.get("eval_loss_after")
    if loss is not None and not (isinstance(loss, (int, float)) and math.isfinite(loss)):
        return f"its held-out loss after training is not finite ({loss})"
    before, after = report.get("stop_rate_before"), report.get("stop_rate_after")
    if before is not None and after is not None and after < before:
        return f"its stop rate fell below the base model's ({after:.2f} < {before:.2f})"
    weights = next((adapter_dir / n for n in WEIGHT_FILES if (adapter_dir / n).is_file()), None)
    if weights is None:
        return f"no weights file ({' / '.join(WEIGHT_FILES)})"
    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises its own error type for a truncated or corrupt file
        return f"{weights.name} is truncated or corrupt ({exc})"
    return None


def select_adapter(runs_dir: Path, base_model: str | None = None) -> AdapterChoice:
    """The newest run under ``runs_dir`` that may be served (see :func:`run_problem`), newer unusable ones skipped.

    Args:
        runs_dir: ``$LLAMA_MD_HOME/runs``.
        base_model: the generator's model id; runs trained on another are skipped (None: not checked).

    Returns:
        An :class:`AdapterChoice`; each skipped run is named with its reason in ``notices`` (also logged).
        ``adapter_dir`` is None when no run may be served: the chat then uses the base model.
    """
    notices = []
    for adapter_dir in _runs_newest_first(runs_dir):
        problem = run_problem(adapter_dir, base_model)
        if problem is None:
            return AdapterChoice(adapter_dir, notices)
        notice = (
            f"Skipping fine-tune run {adapter_dir.parent.name}: {problem}. Serving the previous good run or the "
            f"base model instead; fix or remove {adapter_dir.parent} to stop this notice."
        )
        logger.warning(notice)
        notices.append(notice)
    return AdapterChoice(None, notices)


def latest_adapter(runs_dir: Path, base_model: str | None = None) -> Path | None:
    """The ``adapter/`` folder of the newest run that may be served (:func:`select_adapter`), or None."""
    return select_adapter(runs_dir, base_model).adapter_dir


def check_base_model(info: AdapterInfo, base_model: str, adapter_dir: Path) -> None:
    """Refuse an adapter trained on another base model than the one loaded.

    Raises:
        AdapterError: naming both models and how to fix it.
    """
    if info.base_model != base_model:
        raise AdapterError(
            f"Adapter {adapter_dir} was trained on {info.base_model!r}, but the generator is {base_model!r}. "
            f"Fix: set generator_model (LLAMA_MD_GENERATOR_MODEL) to {info.base_model!r}, or pick another adapter."
        )
