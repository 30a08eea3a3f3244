"""Loading the base model for training (dtype, quantization), applying LoRA / full fine-tuning with layer
freezing, and merging an adapter into a full model on CPU."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from assistant.adapters import AdapterInfo
from assistant.errors import LlamaMdError
from assistant.finetuning.config import FinetuneConfigError
from assistant.finetuning.presets import DEFAULT_PRESET
from assistant.models import ModelUnavailableError, generator_path, load_tokenizer

logger = logging.getLogger(__name__)


class QuantizationError(LlamaMdError, RuntimeError):
    """4-bit / 8-bit loading was asked for where bitsandbytes can't run; the message gives the alternatives."""


def check_quantization(quantization: str | None, device: str) -> None:
    """Refuse ``--quantization`` without a CUDA GPU and the bitsandbytes package.

    Raises:
        QuantizationError: naming what is missing and how to train instead.
    """
    if quantization is None:
        return
    missing = []
    if device != "cuda":
        missing.append(f"a CUDA GPU (this run is on {device})")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package (pip install -e '.[gpu]')")
    if missing:
        raise QuantizationError(
            f"--quantization {quantization} (QLoRA through bitsandbytes) needs {' and '.join(missing)}. "
            "Fix: run on a CUDA machine with `.venv/bin/pip install -e '.[gpu]'`, or train without quantization "
            "(`--quantization none`: LoRA on bf16/fp32 weights), or pick a smaller --preset."
        )


def decoder_layers(model):
    """The ModuleList of decoder layers (``model.model.layers`` for Llama, Qwen2, Mistral)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", base)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise FinetuneConfigError(
            f"Can't find decoder layers in {type(base).__name__}; --freeze-ratio needs model.layers."
        )
    return layers


def load_base_model(cfg, precision, device: str, settings):
    """Load ``cfg.model`` for training.

    Returns:
        ``(model, tokenizer, model_path)``; the tokenizer has a pad token.

    Raises:
        QuantizationError: ``cfg.quantization`` without CUDA + bitsandbytes.
        ModelUnavailableError: the weights can't be had; the message names the embedded preset.
    """
    import torch
    from transformers import AutoModelForCausalLM

    check_quantization(cfg.quantization, device)
    try:
        path = generator_path(cfg.model, settings)
        tokenizer = load_tokenizer(path, settings)
        kwargs = {"dtype": getattr(torch, precision.model_dtype)}
        if cfg.full and precision.model_dtype == "float16":
            kwargs["dtype"] = torch.float32  # fp16 master weights can't be trained with loss scaling
        if cfg.quantization:
            from transformers import BitsAndBytesConfig

            compute = torch.bfloat16 if precision.mode == "bf16" else torch.float16
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=cfg.quantization == "4bit",
                load_in_8bit=cfg.quantization == "8bit",
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            )
            kwargs["device_map"] = {"": torch.cuda.current_device()}
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ModelUnavailableError) as exc:
        raise ModelUnavailableError(
            f"{exc} For --preset {cfg.preset}: the embedded preset `--preset {DEFAULT_PRESET}` trains offline."
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.quantization:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model, tokenizer, path


def apply_training_mode(model, cfg) -> tuple[object, dict]:
    """LoRA adapters (default) or full fine-tuning, with the first ``freeze_ratio`` of decoder layers frozen.

    LoRA: adapters only on layers ``[n_frozen, n_layers)`` (peft ``layers_to_transform``); full: those layers'
    ``requires_grad`` is switched off.

    Returns:
        ``(model, summary)`` with trainable / total parameter counts and the frozen layer count.
    """
    n_layers = len(decoder_layers(model))
    n_frozen = int(cfg.freeze_ratio * n_layers)
    if cfg.full:
        for layer in decoder_layers(model)[:n_frozen]:
            layer.requires_grad_(False)
    else:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
            layers_to_transform=list(range(n_frozen, n_layers)) if n_frozen else None,
            layers_pattern="layers" if n_frozen else None,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    summary = {
        "trainable_params": trainable,
        "total_params": total,
        "frozen_layers": n_frozen,
        "layers": n_layers,
    }
    logger.info(
        "%s: %d of %d parameters trainable (%.2f%%), first %d of %d decoder layers frozen",
        "Full fine-tuning" if cfg.full else "LoRA",
        trainable,
        total,
        100 * trainable / max(total, 1),
        n_frozen,
        n_layers,
    )
    return model, summary


def merge_adapter(adapter_dir: Path, base_path: str, out_dir: Path) -> Path:
    """Merge a LoRA adapter into its base model on CPU in fp32 and save safetensors to ``out_dir``.

    Merging on CPU keeps export from running out of GPU memory (unsloth #1667). ``out_dir`` gets the merged
    weights, the tokenizer and ``llama-md.json`` with ``full_model=True``.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = AdapterInfo.load(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32, device_map={"": "cpu"})
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out_dir)
    info.full_model = True
    info.save(out_dir)
    logger.info("Merged model written to %s", out_dir)
    return out_dir
