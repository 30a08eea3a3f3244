"""trl's SFTTrainer with the run's guards wired in: NaN reporting/injection and real-token throughput.

The loss: trl 1.x computes it through a fused, chunked LM head that also yields per-token entropy and top-1
accuracy for its logs. That keeps the ``tokens x vocab`` logits out of GPU memory, but on this CPU it costs
speed for no memory need: a SmolLM2 LoRA step of 8 ChatDoctor samples ran at 129 real tokens/s through it
and at 180 through the model's own causal-LM loss, with the same losses to 1e-3
(``python -m benchmarks.finetune_throughput --loss fused`` vs ``--loss model``). ``fused_lm_head=False`` (the
default on CPU, ``--loss auto``) therefore uses
``transformers.Trainer.compute_loss`` — the model's loss over the labels, averaged over the step's label
tokens (``num_items_in_batch``) exactly as trl does — and the ``entropy`` / ``mean_token_accuracy`` log
columns are absent.
"""

from __future__ import annotations

import time

import torch
from transformers import Trainer
from trl import SFTTrainer


class GuardedSFTTrainer(SFTTrainer):
    """SFTTrainer that reports every micro-batch loss to a :class:`~assistant.finetuning.guards.NanGuard`,
    can make chosen steps' losses NaN (``inject_nan_steps``, 1-based optimizer steps; a testing aid), and logs
    real (non-padding) tokens per second and the padding share of the batches.

    ``fused_lm_head``: compute the loss through trl's fused LM head (True: GPU memory saver, adds entropy and
    token-accuracy logs) or the model's own loss (False: faster on CPU; see the module docstring)."""

    def __init__(self, *args, guard, inject_nan_steps=(), fused_lm_head: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.fused_lm_head = fused_lm_head
        self.inject_nan_steps = set(inject_nan_steps)
        self.real_tokens = 0
        self.slot_tokens = 0
        self.eval_seconds = 0.0
        self._train_started: float | None = None
        self._train_ended: float | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.fused_lm_head:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        else:
            # as trl's compute_loss does; with a KV cache transformers would not separate padding-free rows
            inputs["use_cache"] = False
            result = Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        if not model.training:
            return result
        loss = result[0] if return_outputs else result
        if self.state.global_step + 1 in self.inject_nan_steps:
            loss = loss * torch.tensor(float("nan"), device=loss.device)
        self.guard.observe_loss(loss)
        return (loss, result[1]) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._train_started is None:
            self._train_started, self.eval_seconds = time.perf_counter(), 0.0
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        self.real_tokens += int(mask.sum()) if mask is not None else ids.numel()
        self.slot_tokens += ids.numel()
        return super().training_step(model, inputs, num_items_in_batch)

    def train(self, *args, **kwargs):
        self._train_ended = None
        try:
            return super().train(*args, **kwargs)
        finally:
            self._train_ended = time.perf_counter()

    def evaluate(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            if self._train_started is not None and self._train_ended is None:  # evaluations inside train()
                self.eval_seconds += time.perf_counter() - started

    @property
    def train_seconds(self) -> float:
        """Wall time from the first training step of this process to the end of ``train()`` (or now),
        evaluations during training excluded."""
        if self._train_started is None:
            return 0.0
        end = self._train_ended or time.perf_counter()
        return end - self._train_started - self.eval_seconds

    @property
    def tokens_per_second(self) -> float:
        """Real (non-padding) tokens per second of training wall time (evaluations excluded)."""
        seconds = self.train_seconds
        return self.real_tokens / seconds if seconds > 0 else 0.0

    @property
    def padding_share(self) -> float:
        """Share of batch positions that were padding."""
        return 1 - self.real_tokens / self.slot_tokens if self.slot_tokens else 0.0

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs["tokens_per_second"] = round(self.tokens_per_second, 1)
            logs["padding_share"] = round(self.padding_share, 4)
        super().log(logs, start_time)
