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


def latest_adapter(runs_dir: Path) -> Path | None:
    """The ``adapter/`` folder of the newest finished run under ``runs_dir`` (by modification time), or None."""
    candidates = [p.parent for p in Path(runs_dir).glob("*/adapter/" + INFO_FILE)]
    return max(candidates, key=lambda p: (p / INFO_FILE).stat().st_mtime) if candidates else None


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
