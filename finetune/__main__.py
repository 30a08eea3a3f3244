"""Fine-tune a small Llama on patient-doctor dialogues (LoRA / QLoRA / full), evaluate it, save the adapter.

Commands to paste::

    python -m finetune --list-presets
    # the embedded model, offline (ChatDoctor-5k from $LLAMA_MD_DATA_DIR/datasets/chatdoctor5k.json):
    python -m finetune --preset smollm2-135m --max-samples 1000 --eval-samples 200
    # a short smoke run
    python -m finetune --max-samples 64 --eval-samples 16 --max-steps 10 --stop-prompts 8
    # Llama 3.2 1B (online, license accepted on the hub, HF_TOKEN set), on a GPU:
    python -m finetune --preset llama3.2-1b --dataset ruslanmv/ai-medical-chatbot --max-samples 20000
    # QLoRA 8B on one CUDA GPU (pip install -e '.[gpu]'):
    python -m finetune --preset llama3.1-8b
    # continue an interrupted run / several processes (DDP):
    python -m finetune --output-dir .llama-md/runs/smollm2-135m-20250101-120000 --resume
    accelerate launch --num_processes 2 -m finetune --preset llama3.2-1b

The adapter lands in ``<output-dir>/adapter/`` with the chat template, system prompt and stop tokens the chat
will use (``python -m assistant chat`` picks the newest run).
"""

from __future__ import annotations

import argparse
import logging
import sys

from assistant.config import load_settings
from assistant.finetuning.config import BATCHING, LOSSES, FinetuneConfig, FinetuneConfigError
from assistant.finetuning.presets import DEFAULT_PRESET, PRESETS, get_preset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m finetune",
        description="LoRA / QLoRA / full fine-tuning with completion-only loss, NaN guards, resume, evaluation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = p.add_argument
    add("--preset", default=DEFAULT_PRESET, help="preset name (see --list-presets)")
    add("--list-presets", action="store_true", help="print the presets and exit")
    add("--model", help="base weights, hub id or local folder (default: the preset's model)")
    add(
        "--dataset",
        help="json/jsonl/csv/parquet/arrow file, saved dataset folder or hub id "
        "(default: $LLAMA_MD_DATA_DIR/datasets/chatdoctor5k.json)",
    )
    add("--output-dir", help="run folder (default: $LLAMA_MD_HOME/runs/<preset>-<time>)")
    add("--home", help="llama-md home (default: settings / LLAMA_MD_HOME)")
    add("--system-prompt", help="system prompt of every example (default: the dataset's instruction)")
    add("--max-samples", type=int, help="cap on training samples, after cleaning and the eval split")
    add("--eval-fraction", type=float, default=0.05, help="share of rows held out, seeded")
    add("--eval-samples", type=int, help="held-out rows as a count (overrides --eval-fraction)")
    add("--specialty", help="keep only this specialty's questions (a corpora/*.toml name)")
    add(
        "--max-seq-length",
        type=int,
        help="tokens per sequence; longer ones are truncated and counted (preset)",
    )
    add("--r", type=int, help="LoRA rank (preset)")
    add("--lora-alpha", type=int, help="LoRA alpha (preset)")
    add("--lora-dropout", type=float, help="LoRA dropout (preset)")
    add("--target-modules", nargs="+", help="layers that get adapters (preset: all linear)")
    add("--learning-rate", type=float, help="peak learning rate (preset)")
    add("--batch-size", type=int, help="sequences per device per micro-batch (preset)")
    add("--gradient-accumulation-steps", type=int, help="micro-batches per optimizer step (preset)")
    add(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        help="recompute activations (preset)",
    )
    add("--quantization", choices=["4bit", "8bit", "none"], help="QLoRA via bitsandbytes, CUDA only (preset)")
    add("--full", action="store_true", help="full fine-tuning instead of LoRA")
    add("--freeze-ratio", type=float, default=0.0, help="share of the first decoder layers kept frozen")
    add(
        "--precision",
        choices=["auto", "bf16", "fp16", "fp32"],
        default="auto",
        help="auto: chosen for the hardware",
    )
    add(
        "--model-dtype",
        choices=["float32", "bfloat16", "float16"],
        help="load dtype (default follows precision)",
    )
    add("--epochs", type=float, default=1.0, help="passes over the training set")
    add("--max-steps", type=int, default=-1, help="stop after this many optimizer steps (-1: run the epochs)")
    add(
        "--warmup-ratio",
        type=float,
        default=0.03,
        help="share of steps with linear warmup, then cosine decay",
    )
    add("--batching", choices=BATCHING, default="padding-free", help="how sequences share a batch")
    add(
        "--loss",
        choices=LOSSES,
        default="auto",
        help="trl's fused LM head (GPU memory saver) or the model's own loss (faster on CPU); auto: fused on CUDA",
    )
    add("--save-steps", type=int, default=50, help="checkpoint and evaluate every N optimizer steps")
    add(
        "--eval-steps",
        type=int,
        help="held-out loss every N steps (default: --save-steps; 0: before/after only)",
    )
    add("--save-total-limit", type=int, default=3, help="checkpoints kept")
    add("--logging-steps", type=int, default=5, help="log every N optimizer steps")
    add("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    add("--overwrite", action="store_true", help="replace a run already in --output-dir")
    add("--nan-patience", type=int, default=3, help="consecutive non-finite steps before a rollback (K)")
    add("--max-rollbacks", type=int, default=3, help="rollbacks before stopping with an error (M)")
    add("--inject-nan-steps", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    add("--stop-prompts", type=int, default=50, help="held-out prompts for the stop rate (0: skip)")
    add("--max-new-tokens", type=int, default=256, help="generation budget per stop-rate prompt, tokens")
    add("--sample-answers", type=int, default=3, help="base vs fine-tuned answers in report.md")
    add("--no-load-best", action="store_true", help="keep the last weights, not the lowest held-out loss")
    add("--early-stopping-patience", type=int, help="stop after N evaluations without improvement")
    add("--merge", action="store_true", help="also write the merged full model (merged on CPU) to merged/")
    add("--seed", type=int, help="seed for split, shuffling, init (default: settings.seed)")
    return p


def list_presets() -> str:
    rows = [
        f"{'name':<14} {'model':<38} {'r':>3} {'alpha':>5} {'lr':>7} {'seq':>5} {'batch':>7} quant  config"
    ]
    for p in PRESETS.values():
        rows.append(
            f"{p.name:<14} {p.model_id:<38} {p.r:>3} {p.lora_alpha:>5} {p.learning_rate:>7.0e} "
            f"{p.max_seq_length:>5} {p.batch_size:>3}x{p.gradient_accumulation_steps:<3} "
            f"{p.quantization or '-':<6} {p.config_url}"
        )
    return "\n".join(rows)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    get_preset(args.preset)  # an unknown name lists the valid ones before anything else
    settings = load_settings({"home": args.home})
    dataset = args.dataset
    if dataset is None and settings.data_dir is not None:
        dataset = str(settings.data_dir / "datasets" / "chatdoctor5k.json")
    if dataset is None:
        raise FinetuneConfigError(
            "No --dataset given and LLAMA_MD_DATA_DIR is unset. Fix: --dataset FILE_OR_HUB_ID "
            "(e.g. ruslanmv/ai-medical-chatbot when online) or set LLAMA_MD_DATA_DIR."
        )
    return FinetuneConfig.from_preset(
        args.preset,
        model=args.model,
        dataset=dataset,
        output_dir=args.output_dir,
        home=settings.home,
        system_prompt=args.system_prompt,
        max_samples=args.max_samples,
        eval_fraction=args.eval_fraction,
        eval_samples=args.eval_samples,
        specialty=args.specialty,
        max_seq_length=args.max_seq_length,
        r=args.r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.target_modules,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        quantization=None if args.quantization == "none" else args.quantization,
        no_quantization=args.quantization == "none",
        full=args.full,
        freeze_ratio=args.freeze_ratio,
        precision=args.precision,
        model_dtype=args.model_dtype,
        epochs=args.epochs,
        max_steps=args.max_steps,
        warmup_ratio=args.warmup_ratio,
        batching=args.batching,
        loss=args.loss,
        save_steps=args.save_steps,
        eval_steps=args.eval_steps,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        resume=args.resume,
        overwrite=args.overwrite,
        nan_patience=args.nan_patience,
        max_rollbacks=args.max_rollbacks,
        inject_nan_steps=args.inject_nan_steps,
        stop_prompts=args.stop_prompts,
        max_new_tokens=args.max_new_tokens,
        sample_answers=args.sample_answers,
        load_best_model_at_end=not args.no_load_best,
        early_stopping_patience=args.early_stopping_patience,
        merge=args.merge,
        seed=args.seed if args.seed is not None else settings.seed,
    )


def cli(argv: list[str] | None = None) -> int:
    from assistant.cli import run_safely

    return run_safely(_cli, argv)


def _cli(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.list_presets:
        print(list_presets())
        return 0
    from assistant.finetuning.training import main

    cfg = config_from_args(args)
    logging.getLogger("finetune").info("Config: %s", cfg.to_dict())
    report = main(cfg)
    print(
        f"finetune: done; report in {cfg.output_dir / 'report.json'} "
        f"(held-out loss {report['eval_loss_before']} -> {report['eval_loss_after']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(cli())
