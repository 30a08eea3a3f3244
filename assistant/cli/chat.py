"""Answer questions with retrieval and the fine-tuned generator (models load once).

    python -m assistant chat "What should I eat during the third trimester?"
    python -m assistant chat --json --from-file questions.txt
    python -m assistant chat --adapter .llama-md/runs/smollm2-135m-20261124-0900 --no-rag "Is spotting normal?"

Without --adapter the newest run in $LLAMA_MD_HOME/runs is used if any, else the base model; the output says which.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from assistant.config import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("questions", nargs="*", metavar="QUESTION", help="questions to answer")
    parser.add_argument("--from-file", type=Path, help="file with one question per line")
    parser.add_argument(
        "--adapter", help="adapter or run folder (default: newest run, else none); 'none' = base model"
    )
    parser.add_argument("--no-rag", action="store_true", help="answer without retrieval")
    parser.add_argument("--json", action="store_true", help="one JSON object per question on stdout")
    parser.add_argument("--top-k", type=int, help="passages retrieved (default: settings top_k = 5)")
    parser.add_argument("--temperature", type=float, help="sampling temperature, 0 = greedy (default 0.6)")
    parser.add_argument("--max-new-tokens", type=int, help="answer length limit in tokens (default 256)")
    parser.add_argument("--seed", type=int, help="sampling seed for reproducible answers")


def run(args: argparse.Namespace) -> int:
    from assistant.chat.answer import Assistant
    from assistant.chat.safety import DISCLAIMER

    settings = load_settings(
        {"top_k": args.top_k, "temperature": args.temperature, "max_new_tokens": args.max_new_tokens}
    )
    questions = list(args.questions)
    if args.from_file:
        if not args.from_file.is_file():
            print(f"error: --from-file {args.from_file} does not exist", file=sys.stderr)
            return 2
        questions += [line.strip() for line in args.from_file.read_text().splitlines() if line.strip()]
    if not questions:
        print(
            'error: no question given. Example: python -m assistant chat "Is spotting normal at 8 weeks?"',
            file=sys.stderr,
        )
        return 2
    adapter = None if (args.adapter or "").lower() == "none" else (args.adapter or "auto")
    bot = Assistant.from_settings(settings, adapter, use_rag=not args.no_rag)
    gen = bot.generator
    print(
        f"model: {gen.base_model}; adapter: {gen.adapter_dir or 'none (base model)'}; "
        f"retrieval: {'off' if args.no_rag else (bot.store_error or f'{bot.retriever.count()} chunks')}",
        file=sys.stderr,
    )
    for question in questions:
        try:
            stream = bot.ask(question, use_rag=not args.no_rag, seed=args.seed)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            answer = stream.collect()
            print(
                json.dumps(
                    {
                        k: answer.to_json()[k]
                        for k in (
                            "question",
                            "answer",
                            "sources",
                            "emergency",
                            "ttft_ms",
                            "tokens_per_s",
                            "flags",
                            "adapter",
                        )
                    }
                ),
                flush=True,
            )
            continue
        print(f"\nQ: {question}\nA: ", end="", flush=True)
        for piece in stream:
            print(piece, end="", flush=True)
        answer = stream.answer
        print()
        for src in answer.sources:
            print(f"  [{src.number}] {src.file}, p. {src.page_label or src.page} (score {src.score:.2f})")
        print(f"  ({answer.ttft_ms:.0f} ms to first token, {answer.tokens_per_s:.1f} tokens/s)")
    if not args.json:
        print(f"\n{DISCLAIMER}")
    return 0
