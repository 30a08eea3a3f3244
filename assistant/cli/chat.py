"""Answer questions with retrieval and the fine-tuned generator (models load once).

    llama-md chat "What should I eat during the third trimester?"
    llama-md chat --json --from-file questions.txt
    llama-md chat --adapter .llama-md/runs/smollm2-135m-20261124-0900 --no-rag "Is spotting normal?"

Without --adapter the newest run in $LLAMA_MD_HOME/runs is used if any, else the base model; the output says which.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.config import ConfigError, Settings, load_settings

#: The keys of each ``--json`` line.
JSON_KEYS = (
    "question",
    "answer",
    "sources",
    "emergency",
    "urgency",
    "category",
    "trigger",
    "screening",
    "ttft_ms",
    "tokens_per_s",
    "flags",
    "adapter",
    "evidence",
    "unsupported",
    "groundedness",
    "shown_text",
)


@dataclass
class ChatConfig:
    settings: Settings
    questions: list[str]
    adapter: str | None = "auto"  # "auto": the newest run; None: the base model
    use_rag: bool = True
    as_json: bool = False
    seed: int | None = None


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


def config_from_args(args: argparse.Namespace) -> ChatConfig:
    """Raises ConfigError when no question is given or --from-file does not exist."""
    settings = load_settings(
        {"top_k": args.top_k, "temperature": args.temperature, "max_new_tokens": args.max_new_tokens}
    )
    questions = list(args.questions)
    if args.from_file:
        if not args.from_file.is_file():
            raise ConfigError(f"--from-file {args.from_file} does not exist")
        questions += [line.strip() for line in args.from_file.read_text().splitlines() if line.strip()]
    if not questions:
        raise ConfigError('no question given. Example: llama-md chat "Is spotting normal at 8 weeks?"')
    adapter = None if (args.adapter or "").lower() == "none" else (args.adapter or "auto")
    return ChatConfig(settings, questions, adapter, not args.no_rag, args.json, args.seed)


def main(cfg: ChatConfig) -> int:
    """Answer each question (streamed, or one JSON object per line with ``as_json``)."""
    from assistant.chat.answer import Assistant
    from assistant.chat.groundedness import LOW_NOTICE
    from assistant.chat.safety import DISCLAIMER
    from assistant.prompts import EmptyQuestionError

    bot = Assistant.from_settings(cfg.settings, cfg.adapter, use_rag=cfg.use_rag)
    print(bot.describe().header(), file=sys.stderr)
    for question in cfg.questions:
        try:
            stream = bot.ask(question, use_rag=cfg.use_rag, seed=cfg.seed)
        except EmptyQuestionError as exc:  # the other questions still get their answers
            print(f"error: {exc}", file=sys.stderr)
            continue
        if cfg.as_json:
            answer = stream.collect()
            print(json.dumps({k: answer.to_json()[k] for k in JSON_KEYS}), flush=True)
            continue
        print(f"\nQ: {question}\nA: ", end="", flush=True)
        for piece in stream:
            print(piece, end="", flush=True)
        answer = stream.answer
        print()
        for item in answer.unsupported:
            action = f"replaced by {item['replaced_by']}" if item["replaced_by"] else "kept, flagged"
            print(f"  ! {', '.join(item['quantities'])}: not in the sources ({action})")
        if "low_groundedness" in answer.flags:  # set once the stream ended, so not streamed with the notices
            print(f"  {LOW_NOTICE}")
        for quote in answer.evidence:
            print(f"  {quote.citation()}")
        for src in answer.sources:
            print(f"  [{src.number}] {src.file}, p. {src.page_label or src.page} (score {src.score:.2f})")
        grounded = "" if answer.groundedness is None else f", groundedness {answer.groundedness:.2f}"
        print(
            f"  ({answer.ttft_ms:.0f} ms to first token, {answer.evidence_ms:.0f} ms to the evidence, "
            f"{answer.tokens_per_s:.1f} tokens/s{grounded})"
        )
    if not cfg.as_json:
        print(f"\n{DISCLAIMER}")
    return 0
