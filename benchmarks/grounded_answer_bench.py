"""What the person reads, measured: cited-gold rate, answer correctness, unsupported quantities, groundedness and
latency, through the chat's answer path (greedy) for each generator variant.

    LLAMA_MD_HOME=.llama-md .venv/bin/python -m benchmarks.grounded_answer_bench \\
        --adapter none --adapter .llama-md/runs/<run> [--questions FILE.jsonl] [--limit N] [--json-out rows.jsonl]
    # retrieval variants through the same answer path (settings overrides, comma-separated key=value):
    LLAMA_MD_HOME=.llama-md .venv/bin/python -m benchmarks.grounded_answer_bench --adapter auto \\
        --variant rerank=off --variant rerank=on \\
        --variant rerank=on,embedding_model=llama-md/minilm-medical,collection=llama-md--medical

Questions: a page-question jsonl, one ``{"question", "file", "page", "key_phrase"}`` per line (default
``assistant/evaluation/data/pregnancy_questions_2.jsonl``); they are only reported on, never tuned on. Per variant
(``--adapter``, repeatable; ``none`` = the base model, ``auto`` = the newest run):

- cited-gold rate: share of answers with a source (:attr:`Answer.sources`) on the gold (file, page);
- answer correctness: share whose text contains the key phrase after normalisation (NFKC, lower case, whitespace
  collapsed), on :attr:`Answer.shown_text` (notices, answer and quoted evidence) and on the generated text alone;
- unsupported-quantity rate: share of answers with at least one quantity the passages do not state
  (:mod:`assistant.chat.numbers`), in the generated text (before the check) and in the text after it;
- groundedness p10 / p50 / p90 (:mod:`assistant.chat.groundedness`), time to first token and time to the evidence
  p50 / p95 in ms.
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from pathlib import Path

import numpy as np

DEFAULT_QUESTIONS = Path("assistant/evaluation/data/pregnancy_questions_2.jsonl")


def normalize(text: str) -> str:
    """How key phrases and answers are compared: NFKC; soft hyphens and pdfium's U+FFFE line-break marks removed;
    unicode dashes as "-"; whitespace collapsed; lower case (the rule the set's key phrases were validated with)."""
    text = unicodedata.normalize("NFKC", text or "").replace("\u00ad", "").replace("\ufffe", "")
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def run_variant(
    adapter: str, rows: list[dict], settings, max_new_tokens: int, label: str = ""
) -> tuple[dict, list[dict]]:
    from assistant.chat.answer import Assistant, number_check_context
    from assistant.chat.numbers import check_numbers

    bot = Assistant.from_settings(settings, None if adapter == "none" else adapter)
    adapter = f"{adapter} {label}".strip()
    bot.ask("warm-up question about pregnancy", max_new_tokens=4, temperature=0).collect()
    out = []
    for row in rows:
        answer = bot.ask(row["question"], temperature=0, max_new_tokens=max_new_tokens, seed=0).collect()
        comp, _, _ = bot.compose_turn(
            row["question"], max_new_tokens=max_new_tokens
        )  # the passages ask() gave
        texts = number_check_context(row["question"], comp.passages) if comp.passages else []
        checked = (
            answer.text
        )  # after the check; the quotes it inserted are verbatim passages (their page label
        for item in answer.unsupported:  # and title year are not in the passage text), so they are left out
            checked = checked.replace(item["replaced_by"] or "\0", " ")
        after = [q.text for c in check_numbers(checked, texts) for q in c.unsupported] if texts else []
        key = normalize(row["key_phrase"])
        out.append(
            {
                "variant": adapter,
                "question": row["question"],
                "gold": [row["file"], row["page"]],
                "cited_gold": any((s.file, s.page) == (row["file"], row["page"]) for s in answer.sources),
                "correct_shown": key in normalize(answer.shown_text),
                "correct_generated": key in normalize(answer.generated_text),
                "unsupported_before": bool(answer.unsupported),
                "unsupported_after": bool(after),
                "unsupported_quantities": [item["quantities"] for item in answer.unsupported],
                "quantities_after": after,
                "groundedness": answer.groundedness,
                "ttft_ms": round(answer.ttft_ms, 1),
                "evidence_ms": round(answer.evidence_ms, 1),
                "sources": [[s.file, s.page] for s in answer.sources],
                "evidence": [e.to_json() for e in answer.evidence],
                "generated_text": answer.generated_text,
                "text": answer.text,
                "shown_text": answer.shown_text,
            }
        )
    n = len(out)
    grounded = [r["groundedness"] for r in out if r["groundedness"] is not None]
    ttft, evidence = [r["ttft_ms"] for r in out], [r["evidence_ms"] for r in out]
    summary = {
        "variant": adapter,
        "n": n,
        "cited_gold": sum(r["cited_gold"] for r in out) / n,
        "correct_shown": sum(r["correct_shown"] for r in out) / n,
        "correct_generated": sum(r["correct_generated"] for r in out) / n,
        "unsupported_before": sum(r["unsupported_before"] for r in out) / n,
        "unsupported_after": sum(r["unsupported_after"] for r in out) / n,
        "groundedness": [pct(grounded, 10), pct(grounded, 50), pct(grounded, 90)],
        "ttft_ms": [pct(ttft, 50), pct(ttft, 95)],
        "evidence_ms": [pct(evidence, 50), pct(evidence, 95)],
    }
    return summary, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="page-question jsonl")
    parser.add_argument(
        "--adapter",
        action="append",
        help="variant, repeatable: none (base model), auto or a run/adapter folder",
    )
    parser.add_argument("--limit", type=int, help="first N questions only (default: all)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=256, help="answer length limit, tokens (default 256)"
    )
    parser.add_argument("--json-out", type=Path, help="write one JSON row per question and variant here")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="settings overrides key=value[,key=value] for one retrieval variant, repeatable (default: as set)",
    )
    args = parser.parse_args()
    from assistant.config import load_settings

    variants = [
        (spec, dict(kv.split("=", 1) for kv in spec.split(",") if kv.strip()))
        for spec in args.variant or [""]
    ]
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    print(f"\n{args.questions} ({len(rows)} questions), greedy, max_new_tokens {args.max_new_tokens}\n")
    print(
        "| variant | cited gold | correct (shown) | correct (generated) | unsupported qty before / after "
        "| groundedness p10/p50/p90 | TTFT p50/p95 ms | evidence p50/p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|", flush=True)
    all_rows = []
    runs = [(adapter, spec, over) for adapter in args.adapter or ["none"] for spec, over in variants]
    for adapter, spec, overrides in runs:  # each variant's row is printed (and saved) as soon as it is done
        settings = load_settings(overrides)
        s, out = run_variant(adapter, rows, settings, args.max_new_tokens, spec)
        g = "/".join("-" if v is None else f"{v:.2f}" for v in s["groundedness"])
        print(
            f"| {s['variant']} | {s['cited_gold']:.2f} | {s['correct_shown']:.2f} | {s['correct_generated']:.2f} "
            f"| {s['unsupported_before']:.2f} / {s['unsupported_after']:.2f} | {g} "
            f"| {s['ttft_ms'][0]:.0f}/{s['ttft_ms'][1]:.0f} | {s['evidence_ms'][0]:.0f}/{s['evidence_ms'][1]:.0f} |",
            flush=True,
        )
        all_rows += out
        if args.json_out:
            args.json_out.write_text("".join(json.dumps(r) + "\n" for r in all_rows))
    if args.json_out:
        print(f"\nper-question rows: {args.json_out}")


if __name__ == "__main__":
    main()
