"""Retrieval suite: recall@k and MRR@5 of the project's Retriever, dense and hybrid, scored by the ingest issue's
own benchmark (``benchmarks/retrieval_bench.py``: ``score``, ``build_medquad``, the pregnancy question file).

Two sets, both variant-independent (retrieval does not depend on the adapter), one column per retrieval mode:

- the ingest issue's 49 pregnancy page questions against the store in ``$LLAMA_MD_HOME/store``
  (found at k = a chunk of the gold page among the first k hits);
- MedQuAD question -> answer: the 500 sample questions' gold answers (quick; plus all other MedQuAD answers in
  full) chunked and embedded like the PDFs by ``build_medquad`` into a store under
  ``<home>/eval/medquad-store``, built once and reused; found = a chunk of the gold answer among the first k.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from assistant.config import Settings
from assistant.evaluation.safety_suite import benchmark_module
from assistant.evaluation.suites import SETS

logger = logging.getLogger(__name__)

MODES = ("dense", "hybrid")
METRIC_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@5")


def _result(name: str, n: int, by_mode: dict[str, dict], note: str, default_mode: str) -> dict:
    info = SETS[name]
    columns = [f"{mode} (answer path)" if mode == default_mode else mode for mode in by_mode]
    return {
        "name": name,
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": n,
        "columns": columns,
        "metrics": {
            m: {c: r[m] for c, r in zip(columns, by_mode.values(), strict=True)} for m in METRIC_KEYS
        },
        "baselines": {},
        "items": {c: r.get("misses", []) for c, r in zip(columns, by_mode.values(), strict=True)},
        "notes": [note],
    }


def _skipped(name: str, why: str) -> dict:
    info = SETS[name]
    logger.warning("Retrieval set %s skipped: %s", name, why)
    return {
        "name": name,
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": 0,
        "columns": [],
        "metrics": {},
        "baselines": {},
        "items": {},
        "notes": [f"skipped: {why}"],
    }


def evaluate_retrieval(bot, cfg, settings: Settings, embedder=None) -> list[dict]:
    """Pregnancy questions (needs the store) and MedQuAD question -> answer (needs ``settings.data_dir``)."""
    from assistant.retrieval import DEFAULT_MODE, Retriever

    bench = benchmark_module("retrieval_bench")
    if bench is None:
        return [_skipped("pregnancy_questions", "benchmarks/retrieval_bench.py is not in this checkout")]
    default = getattr(bot.retriever, "mode", DEFAULT_MODE)
    out = []
    if bot.retriever is None:
        out.append(_skipped("pregnancy_questions", f"no store in {settings.store_dir}"))
    else:
        items = [(r["question"], (r["file"], r["page"])) for r in _read(bench.QUESTIONS)]
        by_mode = {
            mode: bench.score(
                Retriever(settings, bot.retriever.collection, bot.retriever.embed_model, mode), items, _page
            )
            for mode in MODES
        }
        note = f"{len(items)} questions against the store ({bot.retriever.count()} chunks of the pregnancy corpus)."
        out.append(_result("pregnancy_questions", len(items), by_mode, note, default))
    if cfg.size("medquad") == 0:
        return out
    distractors = cfg.size("medquad_corpus")
    mq, items, built = medquad_store(bench, settings, distractors)
    retriever = Retriever.from_settings(mq, DEFAULT_MODE)
    by_mode = {
        mode: bench.score(Retriever(mq, retriever.collection, retriever.embed_model, mode), items, _file)
        for mode in MODES
    }
    note = (
        f"{len(items)} questions; store of their gold answers + "
        f"{'all other' if distractors is None else distractors} other MedQuAD answers ({retriever.count()} chunks, "
        f"{'built in this run' if built else 'reused from ' + str(mq.store_dir)})."
    )
    out.append(_result("medquad", len(items), by_mode, note, default))
    return out


def medquad_store(bench, settings: Settings, distractors: int | None):
    """``(settings of the MedQuAD store, items, built)``: built once by ``bench.build_medquad`` under
    ``<home>/eval/medquad-store`` and reused while the embedding model, chunking and corpus size are the same.
    """
    key = f"medquad-{distractors if distractors is not None else 'all'}-s{settings.seed}"
    mq = replace(settings, home=settings.home / "eval" / "medquad-store", collection=key)
    done = (
        mq.home
        / f"{key}-{settings.embedding_model.replace('/', '_')}-{settings.chunk_size}-{settings.chunk_overlap}.done"
    )
    if done.is_file():
        rows = _read(Path(settings.data_dir) / SETS["medquad"].path)
        return mq, [(r["question"], r["qid"]) for r in rows], False
    mq.home.mkdir(parents=True, exist_ok=True)
    items = bench.build_medquad(
        mq, Path(settings.data_dir), 10**6 if distractors is None else distractors, settings.seed
    )
    done.write_text(f"{len(items)} questions\n")
    return mq, items, True


def _page(hit) -> tuple[str, int]:
    return (hit.file, hit.page)


def _file(hit) -> str:
    return hit.file


def _read(path: Path) -> list[dict]:
    from assistant.evaluation.suites import read_jsonl

    return read_jsonl(path)
