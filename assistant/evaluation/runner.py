"""Run the evaluation suites for the four variants through the chat's own answer path.

One :class:`assistant.chat.answer.Assistant` serves every variant: ``base`` (no adapter, no retrieval), ``rag``
(retrieval), ``ft`` (the LoRA adapter) and ``ft+rag``; the adapter is switched off with peft's
``disable_adapter`` for the variants without it. Decoding is greedy (temperature 0) so a run is reproducible.

    from assistant.config import load_settings
    from assistant.evaluation.runner import EvalConfig, evaluate
    results = evaluate(EvalConfig(suite="quick", variants=("base", "rag")), load_settings())
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from assistant.config import ConfigError, Settings
from assistant.errors import LlamaMdError
from assistant.evaluation import metrics
from assistant.evaluation.likelihood import choose_by_likelihood, composed_messages
from assistant.evaluation.suites import SETS, SIZES, ClosedItem, OpenItem, load_closed, load_kqa

logger = logging.getLogger(__name__)

#: variant -> (use_adapter, use_rag)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "base": (False, False),
    "rag": (False, True),
    "ft": (True, False),
    "ft+rag": (True, True),
}
PARTS = ("patient", "closed", "retrieval", "safety")


@dataclass
class EvalConfig:
    """What to evaluate. ``sizes`` overrides the suite's sample sizes per set (None = whole set)."""

    suite: str = "quick"
    variants: tuple[str, ...] = tuple(VARIANTS)
    adapter: str | Path | None = (
        "auto"  # "auto" = newest run in settings.runs_dir, a run/adapter folder, or None
    )
    parts: tuple[str, ...] = PARTS
    sizes: dict[str, int | None] = field(default_factory=dict)
    max_new_tokens_open: int = 80  # answer length limit for patient questions, tokens
    max_new_tokens_closed: int = 16  # enough for "B. <option>" or "Yes, because ...", tokens
    seed: int = 0
    likelihood_for_all: bool | None = None  # also score parsed answers by log-likelihood; None = in full only

    def __post_init__(self) -> None:
        problems = []
        if self.suite not in SIZES:
            problems.append(f"--suite must be one of {sorted(SIZES)}, got {self.suite!r}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            problems.append(
                f"--variants: unknown {unknown or 'none given'}; choose from {','.join(VARIANTS)}"
            )
        if bad := [p for p in self.parts if p not in PARTS]:
            problems.append(f"unknown parts {bad}; choose from {PARTS}")
        if self.max_new_tokens_open <= 0 or self.max_new_tokens_closed <= 0:
            problems.append("max_new_tokens_open / max_new_tokens_closed must be > 0")
        if self.likelihood_for_all is None:
            self.likelihood_for_all = self.suite == "full"
        if problems:
            raise ConfigError("Invalid evaluation config:\n  - " + "\n  - ".join(problems))

    def size(self, name: str) -> int | None:
        return self.sizes.get(name, SIZES[self.suite].get(name))

    @property
    def uses_adapter(self) -> bool:
        return any(VARIANTS[v][0] for v in self.variants)

    @property
    def uses_rag(self) -> bool:
        return any(VARIANTS[v][1] for v in self.variants)


class EvaluationError(LlamaMdError, RuntimeError):
    """The evaluation can't run as asked (no adapter for ft variants, no store for rag variants)."""


def load_assistant(cfg: EvalConfig, settings: Settings):
    """The Assistant for every variant of ``cfg``; checks the adapter and store the variants need.

    Raises:
        EvaluationError: an ``ft`` variant without an adapter, or a ``rag`` variant without a store.
    """
    from assistant.adapters import latest_adapter
    from assistant.chat.answer import Assistant

    ft = [v for v in cfg.variants if VARIANTS[v][0]]
    missing = (
        f"Variants {ft} need a LoRA adapter but none was found (--adapter {cfg.adapter}, runs in "
        f"{settings.runs_dir}). Fine-tune first (python -m finetune), pass --adapter RUN_DIR, or choose "
        "--variants base,rag."
    )
    if ft and (cfg.adapter is None or (cfg.adapter == "auto" and latest_adapter(settings.runs_dir) is None)):
        raise EvaluationError(missing)
    bot = Assistant.from_settings(settings, cfg.adapter if ft else None, use_rag=cfg.uses_rag)
    if ft and not bot.generator.has_adapter:
        raise EvaluationError(missing)
    if cfg.uses_rag and bot.retriever is None:
        raise EvaluationError(f"Variants with retrieval need the store: {bot.store_error}")
    return bot


def ask(bot, question: str, variant: str, max_new_tokens: int, seed: int):
    use_adapter, use_rag = VARIANTS[variant]
    return bot.ask(
        question,
        use_rag=use_rag,
        use_adapter=use_adapter,
        temperature=0.0,
        max_new_tokens=max_new_tokens,
        seed=seed,
    ).collect()


# ---------------------------------------------------------------------------------------------------------------
# Patient answers


def evaluate_open(bot, name: str, items: list[OpenItem], cfg: EvalConfig, embedder) -> dict:
    """ROUGE-L, semantic similarity, must-have coverage (K-QA), length, stop and run-on rates per variant."""
    has_must = any(it.must_have for it in items)
    result = _set_result(name, len(items), cfg.variants)
    for variant in cfg.variants:
        rows = []
        bar = tqdm(items, desc=f"{name} [{variant}]", unit="q", leave=False)
        for it in bar:
            answer = ask(bot, it.question, variant, cfg.max_new_tokens_open, cfg.seed)
            text = answer.text  # the model's own words, without the notices shown before them
            row = {
                "id": it.id,
                "answer": text,
                "rouge_l": metrics.rouge_l(text, it.reference),
                "words": len(text.split()),
                "stopped": answer.stopped,
                "runs_on": metrics.runs_on(text),
                "no_support": "no_support" in answer.flags,
                "sources": len(answer.sources),
            }
            if has_must:
                row["coverage"] = metrics.must_have_coverage(text, it.must_have, embedder)
            rows.append(row)
            bar.set_postfix(rouge_l=f"{metrics.mean([r['rouge_l'] for r in rows]):.3f}")
        sims = metrics.semantic_similarity(
            [r["answer"] for r in rows], [it.reference for it in items], embedder
        )
        for r, s in zip(rows, sims, strict=True):
            r["similarity"] = s
        result["items"][variant] = rows
        _put(result, variant, _open_summary(rows, has_must, use_rag=VARIANTS[variant][1]))
    # Reference points: another question's physician/doctor answer (an on-domain but off-question answer).
    if len(items) < 2:
        return result
    shifted = [items[(i + 1) % len(items)].reference for i in range(len(items))]
    refs = [it.reference for it in items]
    other = {
        "rouge_l": metrics.mean([metrics.rouge_l(s, r) for s, r in zip(shifted, refs, strict=True)]),
        "similarity": metrics.mean(metrics.semantic_similarity(shifted, refs, embedder)),
    }
    if has_must:
        other["coverage"] = metrics.mean(
            [
                metrics.must_have_coverage(s, it.must_have, embedder)
                for s, it in zip(shifted, items, strict=True)
            ]
        )
        result["baselines"]["reference answer"] = {
            "coverage": metrics.mean(
                [
                    metrics.must_have_coverage(r, it.must_have, embedder)
                    for r, it in zip(refs, items, strict=True)
                ]
            )
        }
    result["baselines"]["another question's reference"] = other
    return result


def _open_summary(rows: list[dict], has_must: bool, use_rag: bool) -> dict:
    summary = {
        "rouge_l": metrics.mean([r["rouge_l"] for r in rows]),
        "similarity": metrics.mean([r["similarity"] for r in rows]),
        "words": metrics.mean([r["words"] for r in rows]),
        "stop_rate": metrics.share([r["stopped"] for r in rows]),
        "run_on_rate": metrics.share([r["runs_on"] for r in rows]),
    }
    if has_must:
        summary["coverage"] = metrics.mean([r["coverage"] for r in rows])
    if use_rag:
        summary["no_support_rate"] = metrics.share([r["no_support"] for r in rows])
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Closed questions


def closed_prompt(item: ClosedItem) -> str:
    """The question as sent: yes/no questions ask for the word first, MCQs list options and ask for the letter."""
    if item.yes_no:
        words = " or ".join(item.options.values()) if len(item.options) == 2 else "yes, no or maybe"
        return f"{item.question}\nAnswer {words} first, then explain briefly."
    listed = "\n".join(f"{k}. {v}" for k, v in item.options.items())
    letters = ", ".join(item.options)
    return f"{item.question}\n\nOptions:\n{listed}\n\nAnswer with the letter of the correct option ({letters}) first."


def evaluate_closed(bot, name: str, items: list[ClosedItem], cfg: EvalConfig) -> dict:
    """Accuracy (parsed answer, else the log-likelihood choice), parse-failure rate, likelihood-only accuracy."""
    result = _set_result(name, len(items), cfg.variants)
    scorable = hasattr(bot.generator, "model")  # a served generator (--generator-url) returns text, no logits
    if not scorable:
        result["notes"].append(
            "served generator: no log-likelihood fallback, unparsed answers count as wrong"
        )
    for variant in cfg.variants:
        use_adapter, use_rag = VARIANTS[variant]
        rows = []
        bar = tqdm(items, desc=f"{name} [{variant}]", unit="q", leave=False)
        for it in bar:
            prompt = closed_prompt(it)
            text = ask(bot, prompt, variant, cfg.max_new_tokens_closed, cfg.seed).text
            parsed = metrics.parse_choice(text, it.options)
            by_ll = None
            if scorable and (parsed is None or cfg.likelihood_for_all):
                messages = composed_messages(
                    bot, prompt, use_rag=use_rag, max_new_tokens=cfg.max_new_tokens_closed
                )
                by_ll = choose_by_likelihood(
                    bot.generator, messages, it.options, yes_no=it.yes_no, use_adapter=use_adapter
                )
            chosen = parsed or by_ll
            rows.append(
                {
                    "id": it.id,
                    "answer": text,
                    "parsed": parsed,
                    "likelihood": by_ll,
                    "chosen": chosen,
                    "gold": it.answer,
                }
            )
            bar.set_postfix(acc=f"{metrics.share([r['chosen'] == r['gold'] for r in rows]):.2f}")
        result["items"][variant] = rows
        picks = [r["chosen"] for r in rows]
        _put(
            result,
            variant,
            {
                "accuracy": metrics.share([r["chosen"] == r["gold"] for r in rows]),
                "parse_failure_rate": metrics.share([r["parsed"] is None for r in rows]),
                "generation_accuracy": metrics.share([r["parsed"] == r["gold"] for r in rows]),
                "top_pick_share": metrics.majority_share(picks),
            },
        )
        if cfg.likelihood_for_all and scorable:
            _put(
                result,
                variant,
                {"likelihood_accuracy": metrics.share([r["likelihood"] == r["gold"] for r in rows])},
            )
    result["baselines"]["majority answer (this sample)"] = {
        "accuracy": metrics.majority_share([it.answer for it in items])
    }
    for label, value in SETS[name].baseline.items():
        result["baselines"][label] = {"accuracy": value}
    return result


# ---------------------------------------------------------------------------------------------------------------
# Shared


def _set_result(name: str, n: int, columns) -> dict:
    info = SETS[name]
    return {
        "name": name,
        "title": info.title,
        "source": info.source,
        "license": info.license,
        "n": n,
        "columns": list(columns),
        "metrics": {},
        "baselines": {},
        "items": {},
        "notes": [],
    }


def _put(result: dict, column: str, values: dict) -> None:
    for metric, value in values.items():
        result["metrics"].setdefault(metric, {})[column] = value


def evaluate(cfg: EvalConfig, settings: Settings, bot=None) -> dict:
    """Run the parts of ``cfg`` and return the results (the content of report.json).

    Args:
        cfg: suite, variants, adapter and sizes.
        settings: data_dir (eval sets), home (store, runs), top_k, min_score.
        bot: an already loaded Assistant (tests); default loads one with :func:`load_assistant`.

    Raises:
        EvaluationError: a variant's adapter or store is missing.
        EvalSetError: an evaluation set is missing under ``settings.data_dir``.
    """
    from assistant.evaluation import retrieval_suite, safety_suite
    from assistant.models import load_embedder

    started = time.perf_counter()
    bot = bot or load_assistant(cfg, settings)
    gen = bot.generator
    results = {
        "suite": cfg.suite,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "settings": settings.to_dict(),
        "model": gen.base_model,
        "adapter": str(gen.adapter_dir) if gen.has_adapter else None,
        "store": f"{bot.retriever.count()} chunks"
        if bot.retriever is not None
        else (bot.store_error or "not used"),
        "decoding": "greedy (temperature 0)",
        "suites": {},
        "timings_s": {},
    }
    embedder = load_embedder(None, settings)
    if "patient" in cfg.parts:
        t = time.perf_counter()
        sets = []
        items, note = chatdoctor_items(cfg, settings, gen)
        sets.append(
            evaluate_open(bot, "chatdoctor", items, cfg, embedder)
            if items
            else _set_result("chatdoctor", 0, [])
        )
        sets[-1]["notes"].append(note)
        sets.append(
            evaluate_open(bot, "kqa", load_kqa(settings.data_dir, cfg.size("kqa"), cfg.seed), cfg, embedder)
        )
        results["suites"]["patient"] = sets
        results["timings_s"]["patient"] = time.perf_counter() - t
    if "closed" in cfg.parts:
        t = time.perf_counter()
        results["suites"]["closed"] = [
            evaluate_closed(bot, name, load_closed(name, settings.data_dir, cfg.size(name), cfg.seed), cfg)
            for name in ("pubmedqa", "bioasq", "obgyn")
        ]
        results["timings_s"]["closed"] = time.perf_counter() - t
    if "retrieval" in cfg.parts:
        t = time.perf_counter()
        results["suites"]["retrieval"] = retrieval_suite.evaluate_retrieval(bot, cfg, settings, embedder)
        results["timings_s"]["retrieval"] = time.perf_counter() - t
    if "safety" in cfg.parts:
        t = time.perf_counter()
        results["suites"]["safety"] = safety_suite.evaluate_safety()
        results["timings_s"]["safety"] = time.perf_counter() - t
    results["timings_s"]["total"] = time.perf_counter() - started
    return results


def chatdoctor_items(cfg: EvalConfig, settings: Settings, generator):
    """``(items, note)``: the adapter run's verified held-out pairs, or ``(None, why they are skipped)``."""
    from assistant.evaluation.heldout import heldout_pairs

    return heldout_pairs(
        settings, generator.adapter_dir if generator.has_adapter else None, cfg.size("chatdoctor"), cfg.seed
    )
