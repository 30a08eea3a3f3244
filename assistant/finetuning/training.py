"""One fine-tuning run, top to bottom: :func:`main` takes a :class:`FinetuneConfig` and returns the report.

Order: resolve precision and device -> check the output folder -> load the model -> prepare the data (with the
end-of-turn pre-flight check) -> LoRA / full -> evaluate before (held-out loss, stop rate, sample answers) ->
train with SFTTrainer (NaN guard, signal checkpoints, metrics.jsonl, TensorBoard) -> evaluate after -> save the
adapter in the shared format (:mod:`assistant.adapters`) -> optional merge -> report.json / report.md / loss.png.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

from assistant.adapters import REPORT_FILE, AdapterInfo
from assistant.config import EMBEDDED_GENERATOR, load_settings
from assistant.errors import LlamaMdError
from assistant.finetuning.checkpoints import RunFolderError, find_resumable_checkpoint, write_failure
from assistant.finetuning.config import FinetuneConfig
from assistant.finetuning.dataprep import prepare_data
from assistant.finetuning.evaluation import generate_answers, stop_rate, stop_token_ids
from assistant.finetuning.guards import NanGuard, SignalCheckpoint, weights_finite
from assistant.finetuning.modeling import (
    apply_training_mode,
    check_quantization,
    load_base_model,
    merge_adapter,
)
from assistant.finetuning.precision import resolve_precision
from assistant.finetuning.presets import get_preset
from assistant.finetuning.report import MetricsFile, ProgressBar, perplexity, plot_loss, write_report
from assistant.models import default_device, resolve_model_id

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
BEFORE_FILE = "before.json"


class TrainingInterrupted(LlamaMdError, RuntimeError):
    """SIGINT / SIGTERM stopped training after a checkpoint was saved; ``signum`` is the signal.

    The command line exits with ``128 + signum`` (130 for SIGINT, 143 for SIGTERM), as a shell does.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class TrainingDiverged(LlamaMdError, RuntimeError):
    """Non-finite steps persisted after the allowed rollbacks; the last good adapter was saved."""


def prepare_run_dir(cfg: FinetuneConfig) -> Path | None:
    """Create ``cfg.output_dir``; return the checkpoint to resume from (or None to start afresh).

    With ``--resume`` the newest *complete* checkpoint is chosen (see :mod:`assistant.finetuning.checkpoints`);
    incomplete newer ones are logged and left in place. With none complete, ``--resume --overwrite`` starts
    afresh and ``--resume`` alone stops.

    Raises:
        RunFolderError: the folder holds a run and neither --resume nor --overwrite was given, or --resume
            finds no complete checkpoint and --overwrite was not given.
    """
    run_dir = cfg.output_dir
    holds_run = run_dir.is_dir() and any(
        (run_dir / name).exists() for name in ("config.json", CHECKPOINTS, "adapter", "report.json")
    )
    if cfg.resume:
        checkpoint, skipped = find_resumable_checkpoint(run_dir / CHECKPOINTS)
        if checkpoint is not None:
            return checkpoint
        found = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped) or "no checkpoint-<step> folder"
        if not cfg.overwrite:
            raise RunFolderError(
                f"--resume: no complete checkpoint in {run_dir / CHECKPOINTS} (found: {found}). Fix: add "
                "--overwrite to start this run afresh, point --output-dir at the folder of the interrupted run, "
                "or drop --resume."
            )
        logger.warning("--resume --overwrite: no complete checkpoint (%s); starting afresh", found)
    if holds_run and not cfg.overwrite:
        raise RunFolderError(
            f"{run_dir} already holds a run (config.json / checkpoints / adapter). Fix: --resume to continue it, "
            "--overwrite to replace it, or another --output-dir."
        )
    if holds_run:
        logger.warning("--overwrite: removing the run in %s", run_dir)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return None


def _training_args(cfg: FinetuneConfig, run_dir: Path, precision, device: str, has_eval: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval and cfg.eval_steps != 0 else "no",
        eval_steps=cfg.eval_steps or cfg.save_steps,
        load_best_model_at_end=cfg.load_best_model_at_end and has_eval and cfg.eval_steps != 0,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        bf16=precision.mode == "bf16",
        fp16=precision.mode == "fp16",
        use_cpu=device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5.x name of gradient checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False},
        # Sequences are truncated (and counted) in dataprep; padding-free requires max_length=None in trl.
        max_length=None if cfg.batching == "padding-free" else cfg.max_seq_length,
        packing=cfg.batching == "packed",
        padding_free=cfg.batching == "padding-free",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
    )


def _callbacks(cfg: FinetuneConfig, run_dir: Path, guard: NanGuard, signals: SignalCheckpoint) -> list:
    from transformers import EarlyStoppingCallback
    from transformers.integrations import TensorBoardCallback

    callbacks = [guard, signals, MetricsFile(run_dir / "metrics.jsonl"), ProgressBar()]
    try:
        from torch.utils.tensorboard import SummaryWriter

        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(run_dir / "tensorboard"))))
    except ImportError:  # tensorboard is a dependency; keep training if a user removed it
        logger.warning("tensorboard is not installed; metrics go to metrics.jsonl only")
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    return callbacks


def main(cfg: FinetuneConfig) -> dict:
    """Run one fine-tune as configured; returns the report (also written to ``report.json``).

    Raises:
        PrecisionError, QuantizationError: the hardware can't run the asked precision / quantization.
        RunFolderError: the output folder holds another run (see --resume / --overwrite).
        ModelUnavailableError: the preset's weights can't be had (names the embedded preset).
        DatasetError, DataPrepError: unreadable data, unknown schema, nothing left, or the end-of-turn token
            would carry no loss.
        TrainingInterrupted: SIGINT / SIGTERM; a checkpoint was saved (resume with --resume).
        CheckpointWriteError: a checkpoint could not be written (disk full); names the file, the last complete
            checkpoint and --resume.
        TrainingDiverged: non-finite steps after --max-rollbacks rollbacks; the last good adapter was saved.
    """
    import torch
    from transformers import PrinterCallback, ProgressCallback, set_seed

    started = time.perf_counter()
    settings = load_settings({"home": str(cfg.home)})
    preset = get_preset(cfg.preset)
    device = default_device()
    precision = resolve_precision(
        cfg.precision, device, quantization=cfg.quantization, model_dtype=cfg.model_dtype
    )
    check_quantization(cfg.quantization, device)
    resume_from = prepare_run_dir(cfg)
    run_dir = cfg.output_dir
    set_seed(cfg.seed)

    model, tokenizer, model_path = load_base_model(cfg, precision, device, settings)
    vocab = tokenizer.get_vocab()
    end_of_turn = preset.end_of_turn if preset.end_of_turn in vocab else tokenizer.eos_token
    data = prepare_data(cfg, tokenizer, end_of_turn, settings)
    model, params = apply_training_mode(model, cfg)
    resolved = {
        "device": device,
        "precision": precision.mode,
        "model_dtype": precision.model_dtype,
        "precision_reason": precision.reason,
        "model_path": model_path,
        "end_of_turn": end_of_turn,
        "system_prompt": data.system_prompt,
        "schema": data.schema,
        "data": data.counts.to_dict(),
        **params,
    }
    (run_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "resolved": resolved}, indent=2))
    logger.info("Resolved run config: %s", json.dumps({**cfg.to_dict(), "resolved": resolved}))

    guard = NanGuard(cfg.nan_patience, cfg.max_rollbacks)
    signals = SignalCheckpoint()
    from assistant.finetuning.trainer import GuardedSFTTrainer

    trainer = GuardedSFTTrainer(
        model=model,
        args=_training_args(cfg, run_dir, precision, device, has_eval=len(data.eval) > 0),
        train_dataset=data.train,
        eval_dataset=data.eval if len(data.eval) else None,
        processing_class=tokenizer,
        callbacks=_callbacks(cfg, run_dir, guard, signals),
        guard=guard,
        inject_nan_steps=cfg.inject_nan_steps,
        fused_lm_head=cfg.loss == "fused" or (cfg.loss == "auto" and device == "cuda"),
    )
    for default in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(default)
    main_process = trainer.is_world_process_zero()
    stops = stop_token_ids(tokenizer, [end_of_turn])
    stop_pairs = data.eval_pairs[: cfg.stop_prompts]
    sample_pairs = data.eval_pairs[: cfg.sample_answers]

    def answers(pairs):
        if not pairs or not main_process:
            return []
        return generate_answers(
            trainer.model,
            tokenizer,
            pairs,
            data.system_prompt,
            stops,
            max_new_tokens=cfg.max_new_tokens,
            fold_system=data.fold_system,
        )

    before_path = run_dir / BEFORE_FILE
    if resume_from is not None and before_path.is_file():
        before = json.loads(before_path.read_text())
    else:
        eval_loss = trainer.evaluate()["eval_loss"] if len(data.eval) else None
        stop_answers = answers(stop_pairs)
        base_samples = (
            stop_answers[: len(sample_pairs)]
            if len(stop_pairs) >= len(sample_pairs)
            else answers(sample_pairs)
        )
        before = {
            "eval_loss": eval_loss,
            "stop_rate": stop_rate(stop_answers),
            "samples": [a.__dict__ for a in base_samples],
        }
        if main_process:
            before_path.write_text(json.dumps(before))
    logger.info("Before training: held-out loss %s, stop rate %s", before["eval_loss"], before["stop_rate"])

    if resume_from is not None:
        guard.load(resume_from)
        logger.info("Resuming from %s", resume_from)
    train_started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except OSError as exc:  # disk full or quota during a save: one line naming the file and the fix
        raise write_failure(exc, run_dir / CHECKPOINTS, trainer.state.global_step) from exc
    train_wall_s = time.perf_counter() - train_started
    if signals.received is not None:
        raise TrainingInterrupted(
            f"Interrupted by signal {signals.received} at step {trainer.state.global_step}; checkpoint saved in "
            f"{run_dir / CHECKPOINTS}. Resume with the same command plus --resume.",
            signals.received,
        )
    if not weights_finite(trainer.model):
        guard.restore_snapshot(trainer.model)

    adapter_dir = run_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    info = AdapterInfo(
        base_model=resolve_model_id(cfg.model, EMBEDDED_GENERATOR),  # aliases expanded, ids/folders as given
        preset=cfg.preset,
        system_prompt=data.system_prompt,
        chat_template=tokenizer.chat_template,
        stop_tokens=[end_of_turn],
        max_seq_length=cfg.max_seq_length,
        full_model=cfg.full,
        task=cfg.task,
    )
    if main_process:
        tokenizer.save_pretrained(adapter_dir)
        info.save(adapter_dir)
    if guard.stop_reason:
        if main_process:  # the chat's adapter="auto" reads this and skips the run
            (run_dir / REPORT_FILE).write_text(
                json.dumps({"status": "diverged", "stop_reason": guard.stop_reason, **guard.state_dict()})
            )
        raise TrainingDiverged(f"{guard.stop_reason} Last good adapter saved in {adapter_dir}.")

    eval_after = trainer.evaluate()["eval_loss"] if len(data.eval) else None
    stop_answers = answers(stop_pairs)
    tuned_samples = (
        stop_answers[: len(sample_pairs)] if len(stop_pairs) >= len(sample_pairs) else answers(sample_pairs)
    )
    if cfg.merge and not cfg.full and main_process:
        merge_adapter(adapter_dir, model_path, run_dir / "merged")

    real_tokens = trainer.real_tokens
    report = {
        "status": "completed",  # adapter="auto" serves only completed runs that pass select_adapter's checks
        "preset": cfg.preset,
        "task": cfg.task,
        "base_model": cfg.model,
        "dataset": cfg.dataset,
        "eval_loss_before": before["eval_loss"],
        "eval_loss_after": eval_after,
        "perplexity_before": perplexity(before["eval_loss"]),
        "perplexity_after": perplexity(eval_after),
        "eval_loss_change": (eval_after / before["eval_loss"] - 1)
        if eval_after is not None and before["eval_loss"]
        else None,
        "stop_rate_before": before["stop_rate"],
        "stop_rate_after": stop_rate(stop_answers),
        "stop_prompts": len(stop_pairs),
        "train_samples": len(data.train),
        "eval_samples": len(data.eval),
        "train_tokens": data.counts.train_tokens,
        "tokens_seen_this_process": real_tokens,
        "tokens_per_second": trainer.tokens_per_second,
        "padding_share": trainer.padding_share,
        "precision": precision.mode,
        "device": device,
        "global_step": trainer.state.global_step,
        "nan_skipped_steps": guard.skipped_steps,
        "nan_skipped_at": guard.skipped_at,
        "rollbacks": guard.rollbacks,
        "rollback_at": guard.rollback_at,
        "rolled_back_steps": guard.rolled_back_steps,  # steps undone by rollbacks, good ones included
        "applied_steps": guard.applied_steps,  # optimizer updates the saved weights hold
        "fp16_overflow_skipped_steps": guard.scaler_skipped_steps,  # GradScaler's own skips, not NaN events
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_wall_seconds": train_wall_s,
        "seconds": time.perf_counter() - started,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "data": data.counts.to_dict(),
        **params,
    }
    if main_process:
        samples = [
            {
                "question": b["question"],
                "base": b["text"],
                "base_stopped": b["stopped"],
                "tuned": t.text,
                "tuned_stopped": t.stopped,
                "reference": p.answer,
            }
            for b, t, p in zip(before["samples"], tuned_samples, sample_pairs, strict=False)
        ]
        write_report(run_dir, report, samples)
        plot_loss(trainer.state.log_history, run_dir / "loss.png")
        logger.info(
            "Done in %.0f s: held-out loss %s -> %s, stop rate %s -> %s, %.0f tokens/s; adapter in %s",
            report["seconds"],
            _fmt(report["eval_loss_before"]),
            _fmt(report["eval_loss_after"]),
            _fmt(report["stop_rate_before"]),
            _fmt(report["stop_rate_after"]),
            report["tokens_per_second"],
            adapter_dir,
        )
    return report


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) and math.isfinite(value) else str(value)
