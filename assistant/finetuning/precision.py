"""Choosing the training precision for the hardware, and refusing combinations known to crash.

* CUDA: bf16 where the GPU supports it (Ampere and newer), else fp16 with loss scaling.
* CPU: bf16 autocast where the CPU has AVX512-BF16 or AMX, else fp32. (Expected ~2x on such CPUs; on the shared,
  overloaded 2-core test machine one SmolLM2 LoRA step took 50.8 s in bf16 vs 49.3 s in fp32, so the gain was not
  confirmed there; ``--precision fp32`` overrides.)
* MPS: fp32 (fp16 training on MPS has no loss scaler in Trainer).

The T4 crash: fp16 loss scaling (``torch.amp.GradScaler``) unscales gradients with a CUDA kernel that has no
bf16 version, so any bf16 trainable tensor fails with ``"_amp_foreach_non_finite_check_and_unscale_cuda" not
implemented for 'BFloat16'``. k-bit preparation (peft ``prepare_model_for_kbit_training``) and LoRA layers
created on a bf16-loaded model make exactly such tensors. :func:`resolve_precision` therefore loads weights in
float16 under fp16 and refuses an explicit bf16 model dtype with fp16 precision before anything loads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistant.errors import LlamaMdError
from assistant.models import cpu_bf16_flags

logger = logging.getLogger(__name__)


class PrecisionError(LlamaMdError, ValueError):
    """A precision that this hardware can't run, or a combination known to crash; the message gives the fix."""


@dataclass(frozen=True)
class Precision:
    """The resolved precision of a run."""

    mode: str
    """bf16 | fp16 | fp32: the Trainer's mixed-precision mode (bf16 on CPU = torch.autocast bf16)."""
    model_dtype: str
    """dtype the base weights load in: float32 | bfloat16 | float16."""
    reason: str
    """Why this was chosen (logged and written to the report)."""


def resolve_precision(
    requested: str,
    device: str,
    *,
    quantization: str | None = None,
    model_dtype: str | None = None,
    cuda_bf16: bool | None = None,
    cpu_flags: list[str] | None = None,
) -> Precision:
    """Pick the precision for ``device`` ("cuda", "cpu", "mps"), honouring an explicit request.

    Args:
        requested: "auto", "bf16", "fp16" or "fp32".
        device: where training runs.
        quantization: None, "4bit" or "8bit" (its compute dtype follows the precision).
        model_dtype: explicit load dtype, or None to follow the precision.
        cuda_bf16: whether the GPU supports bf16 (default: ask torch).
        cpu_flags: CPU bf16 flags (default: :func:`cpu_bf16_flags`).

    Returns:
        The resolved :class:`Precision`.

    Raises:
        PrecisionError: fp16 on a CPU/MPS device, bf16 on a GPU without it, or fp16 loss scaling together with
            bf16 weights (the T4 crash above), each with the flag that fixes it.
    """
    if device == "cuda" and cuda_bf16 is None:
        import torch

        cuda_bf16 = torch.cuda.is_bf16_supported()
    if device == "cpu" and cpu_flags is None:
        cpu_flags = cpu_bf16_flags()
    if requested == "auto":
        if device == "cuda":
            mode, reason = (
                ("bf16", "GPU supports bf16") if cuda_bf16 else ("fp16", "GPU lacks bf16 (pre-Ampere)")
            )
        elif device == "cpu" and cpu_flags:
            mode, reason = "bf16", f"CPU has {', '.join(cpu_flags)}: bf16 autocast"
        else:
            mode, reason = "fp32", f"{device} without bf16 support: fp32"
    else:
        mode, reason = requested, "--precision given"
    if mode == "fp16" and device != "cuda":
        raise PrecisionError(
            f"--precision fp16 needs a CUDA GPU (loss scaling); this run is on {device}. "
            "Fix: --precision bf16 (CPUs with AVX512-BF16/AMX) or --precision fp32."
        )
    if mode == "bf16" and device == "cuda" and not cuda_bf16:
        raise PrecisionError(
            "--precision bf16 was asked for, but this GPU has no bf16 support (e.g. T4, V100). "
            "Fix: --precision fp16 (loss scaling) or --precision fp32."
        )
    default_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[mode]
    if device == "cpu" and mode == "bf16":
        default_dtype = "float32"  # autocast: fp32 master weights, bf16 matmuls
    if mode == "fp16" and model_dtype == "bfloat16":
        raise PrecisionError(
            "fp16 precision with bf16 weights crashes at the first optimizer step: the fp16 gradient scaler "
            'cannot unscale bf16 gradients ("_amp_foreach_non_finite_check_and_unscale_cuda" not implemented '
            f"for 'BFloat16'){' - k-bit preparation makes such tensors' if quantization else ''}. "
            "Fix: drop --model-dtype (fp16 loads float16 weights), or use --precision bf16 on a GPU that "
            "supports it, or --precision fp32."
        )
    chosen = Precision(mode, model_dtype or default_dtype, reason)
    logger.info("Precision %s (weights %s): %s", chosen.mode, chosen.model_dtype, chosen.reason)
    return chosen
