"""Export a fine-tune run as a merged model, a GGUF file or an Ollama model, with its prompt format carried over.

    python -m finetune export .llama-md/runs/smollm2-135m-chatdoctor1k-v2 --to gguf --quant f16
    python -m finetune export RUN_DIR --to merged            # safetensors for transformers / vLLM
    python -m finetune export RUN_DIR --to ollama --quant q8_0 && cd RUN_DIR/export/ollama && ollama create md -f Modelfile

Layout under ``RUN_DIR/export/``:

* ``merged/``: the LoRA merged into the full-precision base (peft ``merge_and_unload``), safetensors, the tokenizer
  with the run's chat template, ``generation_config.json`` whose ``eos_token_id`` lists the end-of-turn ids, and
  ``llama-md.json`` with ``full_model=true``;
* ``gguf/model-<quant>.gguf``: llama.cpp's ``convert_hf_to_gguf.py`` on ``merged/`` (f16, bf16, q8_0), then
  ``llama_model_quantize`` for q4_k_m; its metadata is read back and must hold the run's template and stop ids;
* ``ollama/Modelfile`` + ``ollama/model-<quant>.gguf`` (a hard link when possible): :mod:`.modelfile`;
* ``parity-<target>-<quant>.json`` / ``.md``: :mod:`.parity`, the exported model against base + adapter.

A QLoRA run (quantization 4bit / 8bit) is merged into the full-precision base, never into quantized weights
(merging into rounded weights adds the rounding error to every merged layer).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.adapters import AdapterInfo
from assistant.config import load_settings
from assistant.finetuning.evaluation import stop_token_ids
from assistant.finetuning.gguf import (
    ExportError,
    check_gguf_metadata,
    convert_to_gguf,
    llama_cpp_dir,
    quantize_gguf,
)

logger = logging.getLogger(__name__)

TARGETS = ("merged", "gguf", "ollama")
#: --outtype of convert_hf_to_gguf.py, or (q4_k_m) llama.cpp's quantizer over an f16 file.
QUANTS = ("f16", "bf16", "q8_0", "q4_k_m")


@dataclass
class ExportConfig:
    """What ``finetune export`` makes from a run folder."""

    run_dir: Path
    """Fine-tune run folder (holds adapter/, config.json, report.json)."""
    to: str = "gguf"
    """Target: merged (safetensors), gguf (llama.cpp) or ollama (Modelfile + GGUF)."""
    quant: str = "f16"
    """GGUF weight type: f16, bf16, q8_0 or q4_k_m (ignored for merged)."""
    parity: bool = True
    """Run the parity proof after exporting (--no-parity skips it)."""
    max_stop_rate_drop: float = 0.05
    """Fail when the exported model's stop rate is more than this (a share, 0.05 = 5 points) below the adapter's."""
    stop_prompts: int | None = None
    """Held-out prompts replayed for the stop rate (default: the run's stop_prompts)."""
    max_new_tokens: int | None = None
    """Answer budget in tokens for the stop rate (default: the run's max_new_tokens)."""
    home: Path | None = None
    """llama-md home (default: $LLAMA_MD_HOME)."""
    llama_cpp_dir: Path | None = None
    """Folder with llama.cpp's convert_hf_to_gguf.py and gguf-py/ (default: $LLAMA_MD_LLAMA_CPP_DIR, set by
    `make serve-setup`)."""

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        problems = []
        if self.to not in TARGETS:
            problems.append(f"--to must be one of {', '.join(TARGETS)}, got {self.to!r}")
        if self.quant not in QUANTS:
            problems.append(f"--quant must be one of {', '.join(QUANTS)}, got {self.quant!r}")
        if not (self.run_dir / "adapter").is_dir():
            problems.append(
                f"{self.run_dir} is not a fine-tune run folder (no adapter/); pass the folder `python -m finetune` "
                "wrote (e.g. .llama-md/runs/<preset>-<time>)"
            )
        for name in ("stop_prompts", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "stop_prompts" else 1):
                problems.append(f"--{name.replace('_', '-')} must be positive, got {value}")
        if problems:
            raise ExportError("Invalid export settings: " + "; ".join(problems) + ".")

    @property
    def export_dir(self) -> Path:
        return self.run_dir / "export"


@dataclass
class Exported:
    """What an export wrote: the model folder or file, and what a reader of the report must know."""

    target: str
    path: Path
    merged_dir: Path
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def run_config(run_dir: Path) -> dict:
    """The run's resolved training config (``config.json``), or {} for a run without one."""
    path = Path(run_dir) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def base_model_path(info: AdapterInfo, run_cfg: dict, settings) -> str:
    """Where the run's full-precision base weights load from: the run's resolved model_path, else the model id."""
    from assistant.models import generator_path

    path = (run_cfg.get("resolved") or {}).get("model_path")
    return path if path and Path(path).is_dir() else generator_path(info.base_model, settings)


def check_base_precision(base_path: str) -> None:
    """Refuse a base model that only exists quantized (its config.json carries a quantization_config).

    Raises:
        ExportError: naming the quantization found and what to do.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(base_path)
    except OSError as exc:
        raise ExportError(
            f"Cannot read the base model's config at {base_path!r} ({exc}). Fix: make the base weights available "
            "(download them, or set LLAMA_MD_HOME to the home the run was trained in)."
        ) from exc
    quant = getattr(config, "quantization_config", None)
    if quant:
        method = quant.get("quant_method", "?") if isinstance(quant, dict) else type(quant).__name__
        raise ExportError(
            f"The base model {base_path!r} can only be loaded quantized (quantization_config: {method}), and merging "
            "a LoRA into quantized weights adds their rounding error to every merged layer. Fix: point the run at "
            "the full-precision (fp16/bf16/fp32) release of the same model, e.g. set LLAMA_MD_GENERATOR_MODEL to "
            "its hub id or folder, then export again; or serve base + adapter without merging."
        )


def export_merged(cfg: ExportConfig, settings) -> Exported:
    """Merge the run's LoRA into its full-precision base and write ``export/merged/`` (atomically).

    Raises:
        ExportError: the base can only be loaded quantized (:func:`check_base_precision`).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    adapter_dir = cfg.run_dir / "adapter"
    info, run_cfg = AdapterInfo.load(adapter_dir), run_config(cfg.run_dir)
    notes = []
    quantized = run_cfg.get("quantization") or (
        "4bit" if run_cfg.get("load_in_4bit") else "8bit" if run_cfg.get("load_in_8bit") else None
    )
    dtype = (run_cfg.get("resolved") or {}).get("model_dtype")
    dtype = dtype if dtype in ("float32", "bfloat16") and not quantized else "float32"
    if info.full_model:
        model = AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=getattr(torch, dtype))
        notes.append("full fine-tune run: adapter/ already is the full model; copied, nothing merged")
    else:
        base_path = base_model_path(info, run_cfg, settings)
        check_base_precision(base_path)
        if quantized:
            note = (
                f"the run trained on a {quantized}-quantized base (QLoRA); the adapter was merged into the "
                f"full-precision base {base_path} ({dtype}), not into quantized weights"
            )
            logger.warning("Export: %s", note)
            notes.append(note)
        base = AutoModelForCausalLM.from_pretrained(
            base_path, dtype=getattr(torch, dtype), device_map={"": "cpu"}
        )
        model = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        notes.append(f"LoRA merged with peft merge_and_unload into {base_path} ({dtype})")
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    tokenizer.chat_template = info.chat_template
    stops = stop_token_ids(tokenizer, info.stop_tokens)
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = cfg.export_dir / "merged"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".merged-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        AdapterInfo(**{**asdict(info), "full_model": True}).save(tmp)
        for path in [tmp, *tmp.iterdir()]:  # mkdtemp (and transformers' writer) make them owner-only
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Merged model written to %s (eos_token_id %s)", out, stops)
    return Exported("merged", out, out, notes, {"merge": time.perf_counter() - started})


def export_gguf(cfg: ExportConfig, settings, merged: Exported) -> Exported:
    """Convert ``merged/`` to ``export/gguf/model-<quant>.gguf`` and verify its metadata."""
    from transformers import AutoTokenizer

    started = time.perf_counter()
    converter = llama_cpp_dir(cfg.llama_cpp_dir)
    out_dir = cfg.export_dir / "gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"model-{cfg.quant}.gguf"
    tmp = out_dir / f".{out.name}.partial"
    if cfg.quant in ("f16", "bf16", "q8_0"):
        convert_to_gguf(merged.merged_dir, tmp, cfg.quant, converter)
    else:
        f16 = out_dir / ".model-f16-for-quantize.gguf"
        try:
            convert_to_gguf(merged.merged_dir, f16, "f16", converter)
            quantize_gguf(f16, tmp, cfg.quant)
        finally:
            f16.unlink(missing_ok=True)
    tmp.replace(out)
    info = AdapterInfo.load(merged.merged_dir)
    meta = check_gguf_metadata(out, info, AutoTokenizer.from_pretrained(merged.merged_dir))
    notes = [*merged.notes, f"GGUF metadata read back: chat template = run's, eos {meta['eos_token_id']}, "
             f"eot {meta['eot_token_id']}, add_bos_token {meta['add_bos_token']}"]  # fmt: skip
    seconds = {**merged.seconds, "gguf": time.perf_counter() - started}
    logger.info("GGUF written to %s (%.0f MB)", out, out.stat().st_size / 1e6)
    return Exported("gguf", out, merged.merged_dir, notes, seconds)


def export_ollama(cfg: ExportConfig, settings, gguf: Exported) -> Exported:
    """Put the GGUF (hard link, else copy) and a Modelfile in ``export/ollama/``."""
    from transformers import AutoTokenizer

    from assistant.finetuning.modelfile import write_modelfile

    out_dir = cfg.export_dir / "ollama"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / gguf.path.name
    target.unlink(missing_ok=True)
    try:
        os.link(gguf.path, target)
    except OSError:
        shutil.copy2(gguf.path, target)
    info = AdapterInfo.load(gguf.merged_dir)
    modelfile = write_modelfile(
        out_dir,
        target.name,
        AutoTokenizer.from_pretrained(gguf.merged_dir),
        info,
        temperature=settings.temperature,
        repeat_penalty=settings.repetition_penalty,
        num_predict=settings.max_new_tokens,
    )
    notes = [*gguf.notes, "Ollama is not run here: the Modelfile's TEMPLATE is checked against the Jinja template "
             "by rendering (assistant.finetuning.modelfile.render_go_template)"]  # fmt: skip
    return Exported("ollama", modelfile, gguf.merged_dir, notes, gguf.seconds)


def main(cfg: ExportConfig) -> dict:
    """Export ``cfg.run_dir`` to ``cfg.to`` and (by default) prove parity; returns the parity report (or {}).

    Raises:
        ExportError: a bad run folder, a quantized-only base, a missing converter, a GGUF without the run's
            template or stop ids, or a stop rate more than ``max_stop_rate_drop`` below the adapter's.
    """
    settings = load_settings({"home": str(cfg.home)} if cfg.home else {})
    exported = export_merged(cfg, settings)
    if cfg.to in ("gguf", "ollama"):
        exported = export_gguf(cfg, settings, exported)
    if cfg.to == "ollama":
        exported = export_ollama(cfg, settings, exported)
    logger.info("Exported %s to %s in %s", cfg.run_dir.name, exported.path, exported.seconds)
    if not cfg.parity:
        return {}
    from assistant.finetuning.parity import check_parity

    return check_parity(cfg, exported, settings)
