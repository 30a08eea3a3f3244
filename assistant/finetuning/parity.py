"""Parity proof of an export: does the exported model answer, and stop, like base + adapter did in training?

Both models get the same prompts: the run's held-out stop-rate prompts (its first ``stop_prompts`` held-out pairs,
rebuilt and checked by :func:`assistant.finetuning.split.rebuild_split`) and :data:`CHAT_QUESTIONS`, rendered with
the run's chat template and system prompt. Both decode by the stop-rate rule of training (greedy, repetition
penalty 1.1 on the answer's tokens only, :mod:`assistant.finetuning.evaluation`), ending at the run's stop ids:

* reference: base + adapter in transformers (peft), as the run measured it;
* exported: the merged folder in transformers, or the GGUF in llama.cpp (``llama_cpp.Llama``, the prompt text
  tokenized by llama.cpp itself, one greedy step per ``eval``, logits read from ``scores``).

Figures: stop rate of each (held-out and chat questions apart); the share of prompts whose first 32 generated ids
are identical (a stop counts as a token) and the mean common prefix within those 32; and the mean per-token
log-probability of the held-out reference answers (+ end of turn) under each model, teacher-forced on the same ids,
and their mean difference. The export fails when its held-out stop rate is more than ``max_stop_rate_drop`` below
the reference's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from assistant.adapters import WEIGHT_FILES, AdapterInfo
from assistant.data import Pair
from assistant.finetuning.dataprep import chat_messages, render_example
from assistant.finetuning.evaluation import REPETITION_PENALTY, generate_token_ids, stop_token_ids

logger = logging.getLogger(__name__)

#: Fixed chat questions asked in every parity check (the project's pregnancy specialty).
CHAT_QUESTIONS = (
    "I am 20 weeks pregnant and feel tired all the time. Should I take iron tablets?",
    "Is it safe to drink coffee during pregnancy, and how much?",
    "What are the warning signs in pregnancy that mean I should go to hospital?",
    "How long should I breastfeed my baby only with breast milk?",
    "I have a headache and blurred vision at 34 weeks of pregnancy. What should I do?",
)
FIRST_TOKENS = 32
STOP = -1  # marks "stopped here" in compared id sequences


class TransformersModel:
    """A causal LM in transformers, decoded by the stop-rate rule."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    def prompt_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompts: list[list[int]], stop_ids: list[int], max_new_tokens: int):
        return generate_token_ids(
            self.model, self.tokenizer, prompts, stop_ids, max_new_tokens=max_new_tokens
        )

    def answer_logprob(self, ids: list[int], labels: list[int]) -> float:
        import torch

        with torch.no_grad():
            logits = self.model(torch.tensor([ids])).logits[0, :-1].float()
        return _mean_logprob(torch.log_softmax(logits, -1).numpy(), ids, labels)


class LlamaCppModel:
    """A GGUF in llama.cpp (in process), decoded by the same rule as :class:`TransformersModel`."""

    def __init__(self, gguf: Path, n_ctx: int):
        import os

        from llama_cpp import Llama

        self.llm = Llama(
            str(gguf), n_ctx=n_ctx, logits_all=True, n_threads=os.cpu_count() or 1, seed=0, verbose=False
        )

    def prompt_ids(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def generate(self, prompts: list[list[int]], stop_ids: list[int], max_new_tokens: int):
        from tqdm.auto import tqdm

        results = []
        bar = tqdm(prompts, desc="llama.cpp greedy", unit="prompt")
        for prompt in bar:
            self.llm.reset()
            self.llm.eval(prompt)
            out, stopped = [], False
            for _ in range(max_new_tokens):
                logits = self.llm.scores[self.llm.n_tokens - 1].astype(np.float64)
                seen = np.array(sorted(set(out)), dtype=np.int64)
                if seen.size:  # CTRL penalty, as transformers' RepetitionPenaltyLogitsProcessor
                    picked = logits[seen]
                    logits[seen] = np.where(
                        picked < 0, picked * REPETITION_PENALTY, picked / REPETITION_PENALTY
                    )
                token = int(np.argmax(logits))
                if token in stop_ids:
                    stopped = True
                    break
                out.append(token)
                self.llm.eval([token])
            results.append((out, stopped))
            bar.set_postfix(stop_rate=f"{sum(st for _, st in results) / len(results):.2f}")
        return results

    def answer_logprob(self, ids: list[int], labels: list[int]) -> float:
        self.llm.reset()
        self.llm.eval(ids)
        logits = self.llm.scores[: len(ids) - 1].astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return _mean_logprob(logp, ids, labels)


def _mean_logprob(logp, ids: list[int], labels: list[int]) -> float:
    """Mean log p of the labelled tokens; ``logp[t]`` (T-1, V) predicts ``ids[t + 1]``."""
    positions = [t for t in range(1, len(ids)) if labels[t] != -100]
    return float(np.mean([logp[t - 1, ids[t]] for t in positions]))


def _with_stop(ids: list[int], stopped: bool) -> list[int]:
    return (ids + [STOP] if stopped else ids)[:FIRST_TOKENS]


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def prompts_of(run_dir: Path, settings, n_stop: int) -> tuple[list[Pair], str]:
    """The run's first ``n_stop`` held-out pairs (its stop-rate prompts) and a note on how they were checked."""
    from assistant.finetuning.split import rebuild_split

    split, why = rebuild_split(settings, run_dir)
    if split is None:
        return [], f"held-out prompts {why}; only the chat questions were compared"
    _, held, dataset, expected = split
    return held[:n_stop], (
        f"held-out: the first {min(n_stop, len(held))} of {len(held)} held-out pairs of {dataset.name}, rebuilt with "
        f"the run's seed and checked against its config.json counts and {len(expected)} sample questions"
    )


def load_reference(run_dir: Path, base_path: str, dtype: str = "float32") -> TransformersModel:
    """Base + adapter in transformers, as the run evaluated them (a full fine-tune: the adapter folder itself)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = run_dir / "adapter"
    info = AdapterInfo.load(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    tokenizer.chat_template = info.chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if info.full_model:
        return TransformersModel(
            AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=getattr(torch, dtype)), tokenizer
        )
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype))
    return TransformersModel(PeftModel.from_pretrained(base, str(adapter_dir)), tokenizer)


def cached(path: Path | None, key: list, compute):
    """``compute()``, or its value stored in ``path`` under the same ``key`` (a JSON-able list, hashed).

    The reference side (base + adapter) is the same for every export of a run, and on 2 CPU cores its 50 greedy
    answers take longer than the export itself, so later exports reuse it while prompts, budget, stop ids and the
    adapter's weights are unchanged.
    """
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
    if path is not None and path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == digest:
            logger.info("Parity: base + adapter results reused from %s", path)
            return stored["value"]
    value = compute()
    if path is not None:
        path.write_text(json.dumps({"key": digest, "value": value}))
    return value


def compare(reference, exported, tokenizer, info: AdapterInfo, pairs: list[Pair], max_new_tokens: int,
            max_seq_length: int, cache: Path | None = None, weights_digest: str = "") -> dict:  # fmt: skip
    """Run both models on ``pairs`` + :data:`CHAT_QUESTIONS`; the figures of the module docstring.

    ``cache`` (a JSON file) keeps the reference's answers and log-probabilities for the next export of the run;
    ``weights_digest`` names the adapter's weights in its key.
    """
    stops = stop_token_ids(tokenizer, info.stop_tokens)
    questions = [p.question for p in pairs] + list(CHAT_QUESTIONS)
    texts = [
        tokenizer.apply_chat_template(
            chat_messages(info.system_prompt, q), tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    ref_prompts = [reference.prompt_ids(t) for t in texts]
    exp_prompts = [exported.prompt_ids(t) for t in texts]
    examples = [render_example(tokenizer, info.system_prompt, p.question, p.answer) for p in pairs]
    examples = [(ids[:max_seq_length], labels[:max_seq_length]) for ids, labels in examples]

    def run_reference():
        logger.info("Parity: %d prompts through base + adapter (transformers)", len(texts))
        out = reference.generate(ref_prompts, stops, max_new_tokens)
        logger.info("Parity: teacher-forced log-probabilities of %d reference answers", len(examples))
        return {"out": out, "logprobs": [reference.answer_logprob(ids, labels) for ids, labels in examples]}

    key = [weights_digest, ref_prompts, stops, max_new_tokens, examples, REPETITION_PENALTY]
    ref = cached(cache, key, run_reference)
    ref_out, ref_lp = [tuple(r) for r in ref["out"]], ref["logprobs"]
    logger.info("Parity: the same prompts through the export")
    exp_out = exported.generate(exp_prompts, stops, max_new_tokens)
    n = len(pairs)

    def rate(outs):
        return sum(s for _, s in outs) / len(outs) if outs else None

    firsts = [(_with_stop(*r), _with_stop(*e)) for r, e in zip(ref_out, exp_out, strict=True)]
    logger.info("Parity: teacher-forced log-probabilities under the export")
    exp_lp = [exported.answer_logprob(ids, labels) for ids, labels in examples]
    diffs = [e - r for e, r in zip(exp_lp, ref_lp, strict=True)]
    return {
        "heldout_prompts": n,
        "chat_questions": len(CHAT_QUESTIONS),
        "stop_rate_reference": rate(ref_out[:n]),
        "stop_rate_exported": rate(exp_out[:n]),
        "chat_stop_rate_reference": rate(ref_out[n:]),
        "chat_stop_rate_exported": rate(exp_out[n:]),
        "prompt_tokens_identical": sum(a == b for a, b in zip(ref_prompts, exp_prompts, strict=True))
        / len(texts),
        "first_32_agreement": sum(a == b for a, b in firsts) / len(firsts),
        "mean_common_prefix_tokens": float(np.mean([common_prefix(a, b) for a, b in firsts])),
        "mean_logprob_reference": float(np.mean(ref_lp)) if ref_lp else None,
        "mean_logprob_exported": float(np.mean(exp_lp)) if exp_lp else None,
        "mean_logprob_diff": float(np.mean(diffs)) if diffs else None,
        "mean_abs_logprob_diff": float(np.mean(np.abs(diffs))) if diffs else None,
        "chat_answers": [
            {
                "question": q,
                "reference": tokenizer.decode(r[0], skip_special_tokens=True),
                "exported": tokenizer.decode(e[0], skip_special_tokens=True),
                "stopped": [r[1], e[1]],
            }
            for q, r, e in list(zip(questions, ref_out, exp_out, strict=True))[n:]
        ],  # fmt: skip
    }


def check_parity(cfg, exported, settings) -> dict:
    """Compare ``exported`` (an :class:`assistant.finetuning.export.Exported`) with base + adapter, write
    ``export/parity-<target>-<quant>.json`` and ``.md``, and fail on a stop-rate drop.

    Raises:
        ExportError: the exported held-out stop rate (chat questions when no held-out set) is more than
            ``cfg.max_stop_rate_drop`` below the reference's; names both rates and the report.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from assistant.finetuning.export import ExportError, base_model_path, run_config

    started = time.perf_counter()
    info = AdapterInfo.load(cfg.run_dir / "adapter")
    run_cfg = run_config(cfg.run_dir)
    n_stop = cfg.stop_prompts if cfg.stop_prompts is not None else int(run_cfg.get("stop_prompts", 50))
    max_new = cfg.max_new_tokens or int(run_cfg.get("max_new_tokens", 256))
    pairs, note = prompts_of(cfg.run_dir, settings, n_stop)
    reference = load_reference(cfg.run_dir, base_model_path(info, run_cfg, settings))
    tokenizer = reference.tokenizer
    if exported.target == "merged":
        candidate = TransformersModel(
            AutoModelForCausalLM.from_pretrained(exported.path, dtype=torch.float32), tokenizer
        )
        label, engine = "float32", "transformers (merged folder)"
    else:
        candidate = LlamaCppModel(exported.path if exported.target == "gguf" else exported.path.parent / f"model-{cfg.quant}.gguf",
                                  n_ctx=max(info.max_seq_length, 512) + max_new + 64)  # fmt: skip
        label, engine = cfg.quant, f"llama.cpp (llama-cpp-python, {Path(str(candidate.llm.model_path)).name})"
    weights = next(
        (cfg.run_dir / "adapter" / n for n in WEIGHT_FILES if (cfg.run_dir / "adapter" / n).is_file()), None
    )
    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights else ""
    figures = compare(reference, candidate, tokenizer, info, pairs, max_new, info.max_seq_length,
                      cache=cfg.export_dir / "parity-reference.json", weights_digest=digest)  # fmt: skip
    gate_key = "stop_rate" if pairs else "chat_stop_rate"
    ref_rate, exp_rate = figures[f"{gate_key}_reference"], figures[f"{gate_key}_exported"]
    passed = exp_rate >= ref_rate - cfg.max_stop_rate_drop - 1e-9
    report = {
        "run": cfg.run_dir.name,
        "target": exported.target,
        "quant": label,
        "exported": str(exported.path),
        "engine": engine,
        "reference": "base + adapter in transformers (peft), float32",
        "max_new_tokens": max_new,
        "decoding": f"greedy, repetition penalty {REPETITION_PENALTY} on answer tokens, stop ids {stop_token_ids(tokenizer, info.stop_tokens)}",
        "prompts_note": note,
        **figures,
        "gate": f"{gate_key}: exported >= reference - {cfg.max_stop_rate_drop}",
        "passed": passed,
        "notes": exported.notes,
        "export_seconds": exported.seconds,
        "parity_seconds": time.perf_counter() - started,
    }  # fmt: skip
    path = cfg.export_dir / f"parity-{exported.target}-{label}.json"
    path.write_text(json.dumps(report, indent=2))
    path.with_suffix(".md").write_text(render_markdown(report))
    logger.info("Parity report: %s", path)
    if not passed:
        raise ExportError(
            f"The exported model stops less often than base + adapter: {gate_key} {exp_rate:.2f} exported vs "
            f"{ref_rate:.2f} reference (allowed drop {cfg.max_stop_rate_drop:.2f}). Its prompt format or stop tokens "
            f"were likely not carried over; see {path}. Fix: check export/merged/llama-md.json stop_tokens and the "
            "GGUF's tokenizer.chat_template / eos id, or export at a higher precision (--quant f16)."
        )
    return report


def render_markdown(report: dict) -> str:
    """The parity report as a short Markdown page."""

    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [
        ("held-out stop rate", report["stop_rate_reference"], report["stop_rate_exported"]),
        ("chat-question stop rate", report["chat_stop_rate_reference"], report["chat_stop_rate_exported"]),
        ("mean log p per answer token", report["mean_logprob_reference"], report["mean_logprob_exported"]),
    ]
    lines = [
        f"# Parity: {report['run']} -> {report['target']} ({report['quant']})",
        "",
        f"Exported model: `{report['exported']}` in {report['engine']}; reference: {report['reference']}.",
        f"Decoding: {report['decoding']}, at most {report['max_new_tokens']} new tokens.",
        f"Prompts: {report['heldout_prompts']} held-out + {report['chat_questions']} chat questions ({report['prompts_note']}).",
        "",
        "| figure | base + adapter | exported |",
        "|---|---|---|",
        *(f"| {name} | {fmt(a)} | {fmt(b)} |" for name, a, b in rows),
        "",
        f"- first {FIRST_TOKENS} generated tokens identical: {fmt(report['first_32_agreement'])} of prompts; "
        f"mean common prefix {fmt(report['mean_common_prefix_tokens'])} tokens",
        f"- prompt token ids identical between the two tokenizers: {fmt(report['prompt_tokens_identical'])}",
        f"- mean log-prob difference (exported - reference): {fmt(report['mean_logprob_diff'])} "
        f"(mean absolute {fmt(report['mean_abs_logprob_diff'])})",
        f"- gate ({report['gate']}): {'passed' if report['passed'] else 'FAILED'}",
        *(f"- note: {n}" for n in report["notes"]),
        "",
    ]  # fmt: skip
    return "\n".join(lines)
