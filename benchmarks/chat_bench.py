"""Chat latency: time to first token (with retrieval) and decode tokens/s, against a bare ``model.generate``.

    .venv/bin/python -m benchmarks.chat_bench [--questions 8] [--max-new-tokens 128]

Uses the store and adapter in $LLAMA_MD_HOME (build them with `python -m ingest --specialty pregnancy` and
`python -m finetune`). In the same run, for the same composed prompts, the bare baseline is
``model.generate`` without streaming: its time to first token is a 1-token generate (prefill), its decode rate
``(n - 1) / (t_n - t_1)``. Greedy decoding in both so they produce the same number of tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time

QUESTIONS = [
    "What should I eat during the third trimester?",
    "How soon after birth should breastfeeding start?",
    "Are iron supplements recommended in pregnancy?",
    "How can I recognise perinatal depression?",
    "Which contraception can I use while breastfeeding?",
    "How often should a newborn be checked after birth?",
    "Is it safe to exercise during pregnancy?",
    "What care should a mother get in the first six weeks after birth?",
]


def bare(model, tokenizer, messages, n: int) -> tuple[float, float]:
    import torch

    from assistant.models import repetition_penalty_processors

    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        t = time.perf_counter()
        model.generate(**ids, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        t1 = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(
            **ids,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=repetition_penalty_processors(1.1, ids["input_ids"].shape[1]),
        )
        tn = time.perf_counter() - t
    new = out.shape[1] - ids["input_ids"].shape[1]
    return t1, (new - 1) / max(tn - t1, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch threads (1 on a shared, loaded CPU)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from assistant import torch_thread
    from assistant.chat.answer import Assistant
    from assistant.config import load_settings

    settings = load_settings()
    bot = Assistant.from_settings(settings, "auto")
    gen = bot.generator
    print(
        f"model {gen.base_model}, adapter {gen.adapter_dir}, store: {bot.retriever.count() if bot.retriever else bot.store_error}"
    )
    bot.ask("warm-up question about pregnancy", max_new_tokens=4, temperature=0).collect()
    rows = []
    for q in QUESTIONS[: args.questions]:
        answer = bot.ask(q, temperature=0, max_new_tokens=args.max_new_tokens).collect()
        comp, _, _ = bot.compose_turn(q, max_new_tokens=args.max_new_tokens)  # the prompt ask() sent
        # on the torch thread, where the chat's own generation runs (see assistant.torch_thread)
        ttft_bare, tps_bare = torch_thread.run(
            bare, gen.model, gen.tokenizer, comp.messages, max(answer.new_tokens, 2)
        )
        rows.append(
            (
                answer.retrieval_ms,
                answer.ttft_ms,
                answer.tokens_per_s,
                ttft_bare * 1000,
                tps_bare,
                comp.prompt_tokens,
                answer.new_tokens,
            )
        )
    med = lambda i: statistics.median(r[i] for r in rows)  # noqa: E731
    p95 = lambda i: sorted(r[i] for r in rows)[max(0, int(len(rows) * 0.95) - 1)]  # noqa: E731
    print("| metric | llama-md (retrieval + streaming) | bare model.generate | ratio |")
    print("|---|---|---|---|")
    print(
        f"| time to first token, median ms | {med(1):.0f} (retrieval {med(0):.0f}) | {med(3):.0f} (prefill only) | {med(1) / med(3):.2f}x |"
    )
    print(f"| time to first token, p95 ms | {p95(1):.0f} | {p95(3):.0f} | |")
    print(f"| decode tokens/s, median | {med(2):.1f} | {med(4):.1f} | {med(2) / med(4):.2f}x |")
    print(f"prompt tokens median {med(5):.0f}, new tokens median {med(6):.0f}, {len(rows)} questions")


if __name__ == "__main__":
    main()
