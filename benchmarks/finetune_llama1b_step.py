"""One LoRA step of the llama3.2-1b preset on its real architecture with random weights, on this machine.

    python -m benchmarks.finetune_llama1b_step --seq-len 512

The architecture is meta-llama/Llama-3.2-1B(-Instruct)'s config.json
(https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct/blob/main/config.json), written here from its published
values because the gated weights can't be fetched offline. The LoRA settings, gradient checkpointing and the
precision choice are the preset's / the run's. Prints the step time, tokens/s and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

LLAMA_3_2_1B = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    hidden_act="silu",
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling={
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    tie_word_embeddings=True,
    attention_bias=False,
    mlp_bias=False,
    bos_token_id=128000,
    eos_token_id=[128001, 128008, 128009],
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=512, help="tokens in the one training sequence")
    p.add_argument("--precision", default="auto", help="auto | bf16 | fp32")
    args = p.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from assistant.finetuning.precision import resolve_precision
    from assistant.finetuning.presets import get_preset

    preset = get_preset("llama3.2-1b")
    precision = resolve_precision(args.precision, "cpu")
    torch.manual_seed(0)
    started = time.perf_counter()
    model = LlamaForCausalLM(LlamaConfig(**LLAMA_3_2_1B))
    built_s = time.perf_counter() - started
    lora = LoraConfig(r=preset.r, lora_alpha=preset.lora_alpha, lora_dropout=preset.lora_dropout,
                      target_modules=list(preset.target_modules), task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, lora)
    if preset.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=preset.learning_rate)
    ids = torch.randint(0, LLAMA_3_2_1B["vocab_size"], (1, args.seq_len))
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.mode == "bf16"):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    optimizer.step()
    step_s = time.perf_counter() - started
    result = {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "seq_len": args.seq_len,
        "precision": precision.mode,
        "gradient_checkpointing": preset.gradient_checkpointing,
        "build_s": round(built_s, 1),
        "step_s": round(step_s, 1),
        "tokens_per_second": round(args.seq_len / step_s, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "loss": float(loss.detach()),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
