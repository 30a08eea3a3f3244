"""A fine-tune run's train / held-out split, rebuilt from its ``config.json`` and checked against the run.

A run saves its resolved configuration (dataset, seed, eval_fraction / eval_samples, max_samples, specialty, and
the data counts) but not the held-out rows themselves. :func:`rebuild_split` rebuilds them with the fine-tune's own
functions (:mod:`assistant.finetuning.dataprep`) and checks that the counts equal the run's and that the run's
sample questions (report.json / before.json, drawn from the start of its held-out list) come first. The
evaluation (:mod:`assistant.evaluation.heldout`) and the export's parity proof (:mod:`assistant.finetuning.parity`)
both use it.
"""

from __future__ import annotations

import json
from pathlib import Path

from assistant.config import Settings

COUNT_KEYS = ("rows", "empty", "duplicates", "other_specialty")


def run_folder(adapter_dir: Path) -> Path:
    """The run folder of an adapter (``<run>/adapter`` -> ``<run>``)."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.parent if adapter_dir.name == "adapter" else adapter_dir


def resolve_dataset(raw: str, settings: Settings, run_dir: Path) -> Path | None:
    """The run's dataset file: as written, relative to the run's home, or by name under ``data_dir/datasets``."""
    candidates = [Path(raw), run_dir.parent.parent.parent / raw]
    if settings.data_dir is not None:
        candidates.append(Path(settings.data_dir) / "datasets" / Path(raw).name)
    return next((p for p in candidates if p.exists()), None)


def sample_questions(run_dir: Path) -> list[str]:
    """Questions the run answered from the start of its held-out list (report.json samples, else before.json)."""
    for name in ("report.json", "before.json"):
        path = run_dir / name
        if path.is_file():
            questions = [s.get("question", "") for s in json.loads(path.read_text()).get("samples", [])]
            if questions:
                return questions
    return []


def rebuild_split(settings: Settings, run_dir: Path):
    """``((train, held, dataset, expected), None)``: a run's split rebuilt and checked, or ``(None, why)``.

    ``held`` is in the run's own order (its first ``stop_prompts`` pairs are the prompts of its stop rate) and
    ``expected`` the sample questions it was checked against (checks 1 and 2 of the module docstring).

    Args:
        settings: ``data_dir`` is searched for the dataset when the run's path does not exist here.
        run_dir: the run folder (holding ``config.json``).
    """
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        return None, f"skipped: {config_path} is missing, so the run's split can't be rebuilt"
    from assistant.data import load_table, to_pairs
    from assistant.finetuning.dataprep import DataCounts, clean_pairs, filter_specialty, split_pairs

    cfg = json.loads(config_path.read_text())
    dataset = resolve_dataset(str(cfg.get("dataset", "")), settings, run_dir)
    if dataset is None:
        return (
            None,
            f"skipped: the run's dataset {cfg.get('dataset')!r} is not found here (set LLAMA_MD_DATA_DIR)",
        )
    counts = DataCounts()
    pairs, _ = to_pairs(load_table(dataset))
    counts.rows = len(pairs)
    pairs = clean_pairs(pairs, counts)
    if cfg.get("specialty"):
        before = len(pairs)
        pairs = filter_specialty(pairs, cfg["specialty"], settings)
        counts.other_specialty = before - len(pairs)
    train, held = split_pairs(
        pairs,
        eval_fraction=float(cfg["eval_fraction"]),
        eval_samples=cfg.get("eval_samples"),
        seed=int(cfg["seed"]),
    )
    if cfg.get("max_samples") is not None:
        train = train[: int(cfg["max_samples"])]
    run_counts = (cfg.get("resolved") or {}).get("data") or {}
    ours = counts.to_dict() | {"eval": len(held)}
    differ = {
        k: (run_counts.get(k), ours[k])
        for k in (*COUNT_KEYS, "eval")
        if k in run_counts and run_counts[k] != ours[k]
    }
    if differ:
        return None, f"skipped: the rebuilt split differs from the run's config.json (run, rebuilt): {differ}"
    expected = sample_questions(run_dir)
    if expected and [p.question for p in held[: len(expected)]] != expected:
        return (
            None,
            "skipped: the run's report.json / before.json sample questions are not the rebuilt held-out ones",
        )
    return (train, held, dataset, expected), None
