"""Held-out patient-doctor pairs of a fine-tune run, checked never to have been trained on.

A run saves its resolved configuration (``<run>/config.json``: dataset, seed, eval_fraction / eval_samples,
max_samples, specialty, and the data counts) but not the held-out rows themselves. So the split is rebuilt with
the fine-tune's own functions (:mod:`assistant.finetuning.dataprep`: ``load_table`` -> ``to_pairs`` ->
``clean_pairs`` -> ``filter_specialty`` -> ``split_pairs``) and checked against the run before use:

1. the rebuilt counts (rows, empty, duplicates, other specialty, held-out size) equal the run's ``config.json``;
2. the questions of the run's ``report.json`` samples (or ``before.json``'s, written before training; both drawn
   from the start of its held-out list) are the first rebuilt held-out questions, in order;
3. held-out pairs whose question text also occurs among the training pairs are dropped (``clean_pairs`` only
   removes exact (question, answer) duplicates, so a question can repeat with another answer), and so are
   near-copies (cosine >= ``NEAR_DUPLICATE`` with a training question under the bundled embedder).

When a check fails the set is skipped and the report says why; nothing unverified is scored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from assistant.config import Settings
from assistant.evaluation.suites import OpenItem, sample
from assistant.finetuning.split import rebuild_split, run_folder

logger = logging.getLogger(__name__)

#: Cosine similarity (bundled MiniLM) at which a held-out question counts as a near-copy of a training question.
NEAR_DUPLICATE = 0.95


def drop_near_duplicates(pairs: list, train_questions: list[str], settings: Settings) -> tuple[list, int]:
    """``(kept, dropped)``: ``pairs`` without those whose question is a near-copy of a training question."""
    if not pairs or not train_questions:
        return pairs, 0
    from assistant.evaluation.metrics import embed
    from assistant.models import load_embedder

    embedder = load_embedder(None, settings)
    sims = embed([p.question for p in pairs], embedder) @ embed(train_questions, embedder).T  # (H, T)
    keep = sims.max(axis=1) < NEAR_DUPLICATE
    return [p for p, k in zip(pairs, keep, strict=True) if k], int((~keep).sum())


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def heldout_pairs(settings: Settings, adapter_dir: Path | None, size: int | None, seed: int):
    """``(items, note)``: the run's verified held-out pairs (a ``size`` sample), or ``(None, why)``.

    Args:
        settings: ``data_dir`` is searched for the dataset when the run's path does not exist here.
        adapter_dir: the adapter (or run) folder; None when no adapter is evaluated.
        size: pairs to sample (None = all held-out pairs).
        seed: sampling seed.
    """
    if adapter_dir is None:
        return (
            None,
            "skipped: no fine-tune run, so no held-out split to check against (pass --adapter RUN_DIR)",
        )
    run_dir = run_folder(adapter_dir)
    split, why = rebuild_split(settings, run_dir)
    if split is None:
        return None, why
    train, held, dataset, expected = split
    cfg = json.loads((run_dir / "config.json").read_text())
    trained = {_norm(p.question) for p in train}
    kept = [p for p in held if _norm(p.question) not in trained]
    exact = len(held) - len(kept)
    kept, near = drop_near_duplicates(kept, [p.question for p in train], settings)
    items = [OpenItem(f"heldout-{i}", p.question, p.answer) for i, p in enumerate(kept)]
    note = (
        f"Held-out split of run {run_dir.name} rebuilt with assistant.finetuning.dataprep (dataset {dataset.name}, "
        f"seed {cfg['seed']}, eval_fraction {cfg['eval_fraction']}, eval_samples {cfg.get('eval_samples')}): "
        f"{len(held)} held-out pairs, counts equal to the run's config.json"
        f"{f', first {len(expected)} questions equal to its sample answers' if expected else ', no sample answers to compare yet'}; "
        f"{exact} dropped because their question also occurs in training and {near} because it has cosine >= "
        f"{NEAR_DUPLICATE} with a training question; "
        f"{min(len(items), size or len(items))} sampled (seed {seed})."
    )
    return sample(items, size, seed), note
