"""Triage: train the classifier, evaluate the screen by level, or screen messages.

    llama-md safety train                      # build the classifier (make setup runs this; minutes on 2 cores)
    llama-md safety train --force              # rebuild even when the cache folder exists
    llama-md safety eval                       # held-out graded test set: sensitivity per level, false alarms,
                                               # buried red flags, multi-turn, confusion, misses, screen time
    llama-md safety eval --file assistant/evaluation/data/red_flags_test.jsonl --png docs/safety_confusion.png
    llama-md safety check "my dad's face is drooping" --json
    llama-md safety check "I had my baby 10 days ago" "my calf is swollen and I'm short of breath"

A message file is JSONL with text, label (emergency | urgent | routine; or ``urgency``) and category; optional kind
and turns (the user's recent turns, oldest first). ``check --json`` prints urgency, emergency (true exactly when
urgency is emergency), category, categories, trigger (the sentence that set the level), stage, probabilities and
the advice. The model lives in ``~/.cache/llama-md/safety/<fingerprint>`` ($LLAMA_MD_SAFETY_CACHE).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import ConfigError, Settings, load_settings


@dataclass
class SafetyConfig:
    settings: Settings
    action: str  # train | eval | check
    force: bool = False
    file: Path | None = None
    png: Path | None = None
    messages: list[str] = field(default_factory=list)
    as_json: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("train", "eval", "check"), help="what to do")
    parser.add_argument("messages", nargs="*", help="with check: the user's recent turns, oldest first")
    parser.add_argument(
        "--force", action="store_true", help="with train: rebuild even if cached (default: no)"
    )
    parser.add_argument(
        "--file", type=Path, help="with eval: message file (default: the held-out triage_test.jsonl)"
    )
    parser.add_argument(
        "--png", type=Path, help="with eval: write the confusion matrix PNG here (default: none)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (default: text)")
    parser.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")


def config_from_args(args: argparse.Namespace) -> SafetyConfig:
    """Raises ConfigError for check without a message or a --file that does not exist."""
    if args.action == "check" and not any(m.strip() for m in args.messages):
        raise ConfigError('give the message to check: llama-md safety check "my chest hurts"')
    if args.file is not None and not args.file.is_file():
        raise ConfigError(
            f"--file {args.file} does not exist: give a JSONL file with text, label (emergency | urgent | "
            "routine) and category"
        )
    settings = load_settings({"home": args.home})
    return SafetyConfig(settings, args.action, args.force, args.file, args.png, args.messages, args.json)


def main(cfg: SafetyConfig) -> int:
    """Run the action; eval returns 0 whatever the figures (they are measurements, not a gate)."""
    from assistant.chat.safety import load_screener
    from assistant.chat.safety.screen import build_classifier

    if cfg.action == "train":
        folder, report = build_classifier(cfg.settings, retrain=cfg.force)
        print(
            json.dumps({"model_dir": str(folder), "trained": report is not None, **(report or {})}, indent=1)
        )
        return 0
    screener = load_screener(cfg.settings)
    if cfg.action == "check":
        result = screener.screen_conversation(cfg.messages)
        if cfg.as_json:
            print(json.dumps(result.to_json(), indent=1))
        elif result.urgency == "routine":
            print("routine: no red flag found")
        else:
            print(f'{result.urgency}: {result.category} ("{result.trigger}")\n\n{result.message}')
        return 0
    from assistant.evaluation.safety_suite import (
        TEST_FILE,
        evaluate_screen,
        format_report,
        write_confusion_png,
    )

    result = evaluate_screen(screener.screen_conversation, cfg.file or TEST_FILE)
    print(json.dumps(result, indent=1) if cfg.as_json else format_report(result))
    if cfg.png:
        print(f"wrote {write_confusion_png(result, cfg.png)}")
    return 0
