"""Trainer throughput vs a bare fp32 PyTorch LoRA loop over the same samples, each arm in its own process.

    python -m benchmarks.finetune_throughput --samples 32 --batch-size 8
    python -m benchmarks.finetune_throughput --model /path/to/tiny-model --samples 64   # a quick look

Both arms train the same LoRA (preset smollm2-135m: r 16, alpha 32, all linear layers) on the same completion-only
examples of ChatDoctor-5k for one epoch (``samples / batch_size`` optimizer steps):

* trainer: ``python -m finetune``'s path (SFTTrainer, precision chosen for the hardware, padding-free batches,
  the loss as ``--loss`` chooses: on CPU the model's own loss, ``--loss fused`` for trl's fused LM head);
* bare: fp32, right-padded batches in dataset order, ``model(**batch).loss.backward(); AdamW.step()``.

Printed per arm: real (non-padding) tokens/s over the training wall time, padding share of the batch positions,
peak RSS (``ru_maxrss`` of the arm's process). Model loading and data preparation are outside the timed part.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def run_trainer(args) -> dict:
    from assistant.finetuning.config import FinetuneConfig
    from assistant.finetuning.training import main

    out = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    cfg = FinetuneConfig.from_preset(
        "smollm2-135m", model=args.model, dataset=args.dataset, output_dir=out / "run", home=args.home,
        max_samples=args.samples, eval_samples=1, batch_size=args.batch_size, gradient_accumulation_steps=1,
        epochs=1, save_steps=10_000, eval_steps=0, logging_steps=1, stop_prompts=0, sample_answers=0,
        precision=args.precision, batching=args.batching, loss=args.loss,
    )  # fmt: skip
    report = main(cfg)
    return {
        "arm": f"trainer ({report['precision']}, {args.batching}, loss {args.loss})",
        "tokens_per_second": report["tokens_per_second"],
        "padding_share": report["padding_share"],
        "real_tokens": report["tokens_seen_this_process"],
        "steps": report["global_step"],
    }


def run_bare(args) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from assistant.config import load_settings
    from assistant.finetuning.config import FinetuneConfig
    from assistant.finetuning.dataprep import IGNORE_INDEX, prepare_data
    from assistant.models import load_generator

    settings = load_settings({"home": args.home})
    cfg = FinetuneConfig.from_preset(
        "smollm2-135m", model=args.model, dataset=args.dataset, max_samples=args.samples, eval_samples=1
    )
    model, tokenizer = load_generator(cfg.model, settings, device="cpu", dtype="float32")
    data = prepare_data(cfg, tokenizer, "<|im_end|>", settings)
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, lora).train()
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    rows = list(zip(data.train["input_ids"], data.train["labels"], strict=True))
    real = slots = 0
    started = time.perf_counter()
    for start in range(0, len(rows), args.batch_size):
        batch = rows[start : start + args.batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), IGNORE_INDEX)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (row_ids, row_labels) in enumerate(batch):
            ids[i, : len(row_ids)] = torch.tensor(row_ids)
            labels[i, : len(row_labels)] = torch.tensor(row_labels)
            mask[i, : len(row_ids)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        real += int(mask.sum())
        slots += mask.numel()
    seconds = time.perf_counter() - started
    return {
        "arm": "bare fp32 loop (padded)",
        "tokens_per_second": real / seconds,
        "padding_share": 1 - real / slots,
        "real_tokens": real,
        "steps": -(-len(rows) // args.batch_size),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default="HuggingFaceTB/SmolLM2-135M-Instruct", help="base weights (default: embedded)"
    )
    p.add_argument("--dataset", default=str(Path(os.environ.get("LLAMA_MD_DATA_DIR", "../shared"))
                                             / "datasets" / "chatdoctor5k.json"), help="training data")  # fmt: skip
    p.add_argument("--home", default=".llama-md", help="llama-md home (model cache)")
    p.add_argument("--samples", type=int, default=32, help="training samples (one epoch)")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per batch, both arms")
    p.add_argument("--precision", default="auto", help="trainer arm precision (auto = chosen for the CPU)")
    p.add_argument("--batching", default="padding-free", help="trainer arm batching")
    p.add_argument("--loss", default="auto", help="trainer arm loss: auto | fused (trl's LM head) | model")
    p.add_argument(
        "--arms", nargs="+", default=["trainer", "bare"], help="arms to run, each in its own process"
    )
    p.add_argument("--arm", choices=["trainer", "bare"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.arm:
        result = run_trainer(args) if args.arm == "trainer" else run_bare(args)
        result["peak_rss_gb"] = peak_rss_gb()
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    results = {}
    for arm in args.arms:
        done = subprocess.run([sys.executable, "-m", "benchmarks.finetune_throughput", *sys.argv[1:], "--arm", arm],
                              capture_output=True, text=True, check=True)  # fmt: skip
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        results[arm] = json.loads(line[len("RESULT ") :])
    print(
        "| arm | real tokens/s | padding share | peak RSS (GB) | steps | real tokens |\n|---|---|---|---|---|---|"
    )
    for r in results.values():
        print(f"| {r['arm']} | {r['tokens_per_second']:.1f} | {r['padding_share']:.1%} | {r['peak_rss_gb']:.2f} | "
              f"{r['steps']} | {r['real_tokens']} |")  # fmt: skip
    if len(results) < 2:
        return 0
    t, b = results["trainer"], results["bare"]
    print(
        f"speed-up {t['tokens_per_second'] / b['tokens_per_second']:.2f}x (target >= 1.6x); "
        f"peak RSS ratio {t['peak_rss_gb'] / b['peak_rss_gb']:.2f}x (target <= 1.3x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
