"""In-run evaluation helpers: does the model end its answers by itself, and sample answers for the report.

The stop rate is the share of held-out prompts whose greedy answer (repetition penalty 1.1 on the answer's tokens,
as in the chat: :func:`assistant.models.repetition_penalty_processors`)
emits an end-of-turn / EOS token within ``max_new_tokens``. A model that never stops is the classic symptom of
an untrained end-of-turn token (see :mod:`assistant.finetuning.dataprep`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from assistant.data import Pair
from assistant.finetuning.dataprep import chat_messages
from assistant.models import repetition_penalty_processors

logger = logging.getLogger(__name__)

REPETITION_PENALTY = 1.1
"""Same as the chat's default (assistant.config.Settings.repetition_penalty)."""


@dataclass
class Answer:
    question: str
    text: str
    stopped: bool
    new_tokens: int


def stop_token_ids(tokenizer, stop_tokens: list[str]) -> list[int]:
    """Ids of ``stop_tokens`` plus the tokenizer's EOS (unknown tokens left out)."""
    ids = {tokenizer.convert_tokens_to_ids(t) for t in stop_tokens} | {tokenizer.eos_token_id}
    return sorted(i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id)


@torch.no_grad()
def generate_token_ids(
    model,
    tokenizer,
    prompts: list[list[int]],
    stop_ids: list[int],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 16,
) -> list[tuple[list[int], bool]]:
    """Greedy continuations of tokenized prompts, batched with left padding (the stop-rate decoding rule).

    Args:
        prompts: one list of token ids per prompt (the chat template already applied).
        stop_ids: generation ends at the first of these.

    Returns:
        One ``(ids, stopped)`` per prompt: the generated ids up to and excluding the stop id, and whether one was
        emitted within ``max_new_tokens``.
    """
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    results = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            enc = tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(model.device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                logits_processor=repetition_penalty_processors(REPETITION_PENALTY, enc["input_ids"].shape[1]),
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
            for row in out[:, enc["input_ids"].shape[1] :]:
                ids = row.tolist()
                stop_at = next((i for i, t in enumerate(ids) if t in stop_ids), None)
                results.append((ids if stop_at is None else ids[:stop_at], stop_at is not None))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return results


def generate_answers(
    model,
    tokenizer,
    pairs: list[Pair],
    system_prompt: str,
    stop_ids: list[int],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    fold_system: bool = False,
) -> list[Answer]:
    """Greedy answers to ``pairs``' questions (:func:`generate_token_ids`); ``stopped`` = a stop id was emitted."""
    prompts = [
        tokenizer.apply_chat_template(
            chat_messages(system_prompt, p.question, fold_system=fold_system),
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in pairs
    ]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in prompts]
    results = generate_token_ids(
        model, tokenizer, ids, stop_ids, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    return [
        Answer(
            pair.question,
            tokenizer.decode(kept, skip_special_tokens=True).strip(),
            stopped,
            len(kept) + stopped,
        )
        for pair, (kept, stopped) in zip(pairs, results, strict=True)
    ]


def stop_rate(answers: list[Answer]) -> float | None:
    """Share of answers that ended on a stop token (None for no answers)."""
    return sum(a.stopped for a in answers) / len(answers) if answers else None
