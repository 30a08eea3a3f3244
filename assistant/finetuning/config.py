"""The resolved configuration of one fine-tuning run: a dataclass, and the source of ``llama-md finetune``'s flags.

Every field is a flag (``max_samples`` -> ``--max-samples``); its docstring is the flag's help and its default the
flag's default (:mod:`assistant.cli.finetune` generates the parser with transformers' ``HfArgumentParser``).

Precedence: preset defaults < explicit values. :meth:`FinetuneConfig.from_preset` fills every field the caller
left as ``None`` from the preset; ``__post_init__`` validates everything at once and names the flag to change.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import LlamaMdError
from assistant.finetuning.presets import DEFAULT_PRESET, get_preset

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
QUANTIZATIONS = (None, "4bit", "8bit")
LOSSES = ("auto", "fused", "model")
BATCHING = ("padding-free", "packed", "padded")
MODEL_DTYPES = (None, "float32", "bfloat16", "float16")
TASKS = ("chat", "rag")
RAG_MAX_SEQ_LENGTH = 1024
"""--task rag's max_seq_length unless set: SmolLM2 renders 500 pairs (400 RAG with 3-5 passages of 128 embedding
tokens + 100 ChatDoctor) to p95 809 / max 897 tokens, none truncated at 1024 and 65% at the preset's 512 (dry run in
docs/results.md)."""
#: Fields named as in :class:`~assistant.finetuning.presets.Preset`, taken from it when left unset (None).
PRESET_FIELDS = (
    "r",
    "lora_alpha",
    "lora_dropout",
    "learning_rate",
    "max_seq_length",
    "batch_size",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
)
#: Every field whose default is the preset's (``model`` is the preset's ``model_id``).
FROM_PRESET = (*PRESET_FIELDS, "target_modules", "model", "quantization")


class FinetuneConfigError(LlamaMdError, ValueError):
    """One or more settings are invalid; the message lists each problem with the flag that fixes it."""


@dataclass
class FinetuneConfig:
    """Everything a run needs; written to ``<output_dir>/config.json``."""

    preset: str = DEFAULT_PRESET
    """Preset name (``--list-presets`` shows them); its values fill every field left unset."""
    model: str = ""
    """Base weights: hub id or local folder."""
    task: str = "chat"
    """chat: the dataset's question/answer pairs; rag: RAFT-style pairs (Zhang et al. 2024, arXiv 2403.10131) built
    from a MedQuAD-like --dataset: the chat's prompt with k numbered passages, the target quoting and citing the
    right one [n] or abstaining, mixed with --mix-samples pairs of --mix-dataset (assistant/finetuning/rag_data.py)."""
    dataset: str = ""
    """json / jsonl / csv / parquet / arrow file, saved dataset folder or hub id (command-line default:
    ``$LLAMA_MD_DATA_DIR/datasets/chatdoctor5k.json``; with --task rag ``.../datasets/medquad.jsonl``)."""
    rag_samples: int = 800
    """--task rag: RAG pairs built from --dataset (fewer when fewer rows survive deduplication), before the split;
    800 + 200 mixed pairs are ~518k tokens at max_seq_length 1024, ~36 min per epoch on 2 CPU cores."""
    rag_top_k: int = 5
    """--task rag: most passages per prompt; each prompt gets k in [min(3, rag_top_k), rag_top_k] (chat top_k: 5)."""
    rag_chunk_size: int = 128
    """--task rag: passage length, embedding-model tokens (the store's chunk_size is 254; see docs/results.md)."""
    abstain_fraction: float = 0.15
    """--task rag: share of RAG pairs without the gold passage, whose target says the passages do not cover it."""
    mix_dataset: str = ""
    """--task rag: patient-doctor pairs mixed in (command-line default:
    ``$LLAMA_MD_DATA_DIR/datasets/chatdoctor5k.json``)."""
    mix_samples: int = 200
    """--task rag: pairs taken from --mix-dataset, seeded (0: none)."""
    output_dir: Path = Path()
    """Run folder (default: ``<home>/runs/<preset>-<time>``)."""
    home: Path = Path(".llama-md")
    """llama-md home: model cache, default runs folder (command-line default: the settings' home)."""
    system_prompt: str | None = None
    """System prompt of every example (default: the dataset's instruction, else the project default)."""
    max_samples: int | None = None
    """Cap on training samples after cleaning and the eval split (default: no cap)."""
    eval_fraction: float = 0.05
    """Share of cleaned rows held out for evaluation, seeded."""
    eval_samples: int | None = None
    """Held-out rows as a count; overrides ``--eval-fraction``."""
    specialty: str | None = None
    """Keep only questions closest to this specialty's corpus description (a ``corpora/*.toml`` name)."""
    max_seq_length: int | None = None
    """Tokens per training sequence; longer ones are truncated and counted (--task rag: 1024 unless set)."""
    r: int | None = None
    """LoRA rank."""
    lora_alpha: int | None = None
    """LoRA alpha (scale = lora_alpha / r)."""
    lora_dropout: float | None = None
    """Dropout on LoRA inputs."""
    target_modules: list[str] | None = None
    """Linear layers that get adapters."""
    learning_rate: float | None = None
    """Peak learning rate."""
    batch_size: int | None = None
    """Sequences per device per micro-batch."""
    gradient_accumulation_steps: int | None = None
    """Micro-batches per optimizer step."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in backward to save memory."""
    quantization: str | None = None
    """4bit or 8bit: QLoRA via bitsandbytes, CUDA only; none: no quantization even if the preset has one."""
    no_quantization: bool = False
    """Force no quantization even when the preset defaults to one (``--quantization none``)."""
    full: bool = False
    """Full fine-tuning instead of LoRA."""
    freeze_ratio: float = 0.0
    """Share of the first decoder layers that stay frozen (LoRA: no adapters there)."""
    precision: str = "auto"
    """auto | bf16 | fp16 | fp32 (auto: chosen for the hardware and logged)."""
    model_dtype: str | None = None
    """dtype the weights load in (default follows the precision: bf16 -> bfloat16, fp16 -> float16 on CUDA)."""
    epochs: float = 1.0
    """Passes over the training set."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    warmup_ratio: float = 0.03
    """Share of steps with linear warmup before the cosine decay."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    batching: str = "padding-free"
    """padding-free (sequences of a batch concatenated), packed (bins of max_seq_length) or padded."""
    loss: str = "auto"
    """auto | fused | model: trl's fused chunked LM head (GPU memory saver) or the model's own loss (faster on
    CPU); auto = fused on CUDA, model elsewhere (see assistant/finetuning/trainer.py)."""
    save_steps: int = 50
    """Checkpoint (and evaluate) every this many optimizer steps."""
    eval_steps: int | None = None
    """Evaluate the held-out loss every N steps (default: at every checkpoint; 0: only before and after)."""
    save_total_limit: int = 3
    """Checkpoints kept (the best one is always kept)."""
    logging_steps: int = 5
    """Log loss, learning rate and tokens/s every this many steps."""
    resume: bool = False
    """Continue from the newest complete checkpoint in output_dir (incomplete ones are skipped and logged)."""
    overwrite: bool = False
    """Replace an existing run in output_dir; with resume: start afresh only when no checkpoint is complete."""
    nan_patience: int = 3
    """Consecutive non-finite steps before rolling back to the last good snapshot (K): weights, optimizer, scheduler."""
    max_rollbacks: int = 3
    """Rollbacks before the run stops with an error (M)."""
    inject_nan_steps: list[int] = field(default_factory=list)
    """Testing aid: make the loss of these optimizer steps (1-based) NaN, to exercise the guards."""
    stop_prompts: int = 50
    """Held-out prompts whose answers are generated to measure the stop rate before and after (0: skip)."""
    max_new_tokens: int = 256
    """Generation budget for the stop-rate prompts and sample answers."""
    sample_answers: int = 3
    """Base vs fine-tuned answers written to report.md."""
    load_best_model_at_end: bool = True
    """Keep the checkpoint with the lowest eval loss as the final adapter."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement (default: off)."""
    merge: bool = False
    """Also write the merged full model (merged on CPU) to output_dir/merged."""
    seed: int = 0
    """Seed for the split, shuffling, LoRA init and dropout (command-line default: the settings' seed)."""

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.home = Path(self.home)
        problems = []
        if self.task not in TASKS:
            problems.append(f"--task must be one of {TASKS}, got {self.task!r}")
        if self.rag_samples <= 0 or self.rag_top_k < 2 or self.rag_chunk_size <= 0 or self.mix_samples < 0:
            problems.append(
                "--rag-samples and --rag-chunk-size must be > 0, --rag-top-k >= 2 (a gold passage and a "
                f"distractor) and --mix-samples >= 0; got {self.rag_samples}, {self.rag_chunk_size}, "
                f"{self.rag_top_k}, {self.mix_samples}"
            )
        if not 0 <= self.abstain_fraction < 1:
            problems.append(f"--abstain-fraction must be in [0, 1), got {self.abstain_fraction}")
        if self.quantization not in QUANTIZATIONS:
            problems.append(f"--quantization must be 4bit, 8bit or none, got {self.quantization!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.model_dtype not in MODEL_DTYPES:
            problems.append(f"--model-dtype must be float32, bfloat16 or float16, got {self.model_dtype!r}")
        if self.batching not in BATCHING:
            problems.append(f"--batching must be one of {BATCHING}, got {self.batching!r}")
        if self.loss not in LOSSES:
            problems.append(f"--loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0 <= self.freeze_ratio < 1:
            problems.append(f"--freeze-ratio must be in [0, 1), got {self.freeze_ratio}")
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"--eval-fraction must be in [0, 1), got {self.eval_fraction}")
        if self.eval_samples is not None and self.eval_samples < 0:
            problems.append(f"--eval-samples must be >= 0, got {self.eval_samples}")
        if self.max_samples is not None and self.max_samples <= 0:
            problems.append(f"--max-samples must be > 0, got {self.max_samples}")
        for name in ("r", "lora_alpha", "max_seq_length", "batch_size", "gradient_accumulation_steps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                problems.append(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.lora_dropout is not None and not 0 <= self.lora_dropout < 1:
            problems.append(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            problems.append(f"--learning-rate must be > 0, got {self.learning_rate}")
        if self.full and self.quantization:
            problems.append("--full cannot train quantized weights; drop --quantization or --full")
        if self.save_steps <= 0 or self.logging_steps <= 0:
            problems.append("--save-steps and --logging-steps must be > 0")
        if self.nan_patience <= 0 or self.max_rollbacks < 0:
            problems.append("--nan-patience must be > 0 and --max-rollbacks >= 0")
        if self.early_stopping_patience and (self.eval_steps == 0 or not self.load_best_model_at_end):
            problems.append(
                "--early-stopping-patience needs evaluations during training (drop --eval-steps 0 "
                "and --no-load-best)"
            )
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("set --epochs > 0 or --max-steps > 0")
        if problems:
            raise FinetuneConfigError("Invalid fine-tuning settings:\n  - " + "\n  - ".join(problems))

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **values: Any) -> FinetuneConfig:
        """Build a config: explicit ``values`` (None = unset) over the preset's defaults.

        Raises:
            PresetError: unknown preset (lists the valid ones).
            FinetuneConfigError: invalid values (lists every problem).
        """
        chosen = get_preset(preset)
        values = {k: v for k, v in values.items() if v is not None}
        if values.get("task") == "rag":  # k passages do not fit a chat preset's sequence length
            values.setdefault("max_seq_length", max(RAG_MAX_SEQ_LENGTH, chosen.max_seq_length))
            # A padding-free batch of 8 RAG sequences is ~5,000 tokens: without activation checkpointing the first
            # --task rag run grew to 21.7 GB and was OOM-killed at step ~45 on a 24 GB machine (docs/results.md).
            values.setdefault("gradient_checkpointing", True)
            if "batch_size" not in values and "gradient_accumulation_steps" not in values:
                values["batch_size"] = max(1, chosen.batch_size // 2)  # same effective batch, half the tokens
                values["gradient_accumulation_steps"] = chosen.gradient_accumulation_steps * 2
        for name in PRESET_FIELDS:
            values.setdefault(name, getattr(chosen, name))
        values.setdefault("target_modules", list(chosen.target_modules))
        values.setdefault("model", chosen.model_id)
        if values.get("no_quantization"):
            values["quantization"] = None
        else:
            values.setdefault("quantization", None if values.get("full") else chosen.quantization)
        home = Path(values.get("home", ".llama-md"))
        values.setdefault("output_dir", home / "runs" / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        return cls(preset=preset, **values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))
