"""Route questions to a specialty of the taxonomy; build or evaluate the router.

    llama-md specialty "two weeks of an itchy rash on both elbows"
    llama-md specialty --json --from-file questions.txt          # one question per line
    llama-md specialty train                                      # build the router (make setup runs this)
    llama-md specialty train --force                              # rebuild even when cached
    llama-md specialty eval                                       # held-out patient questions + silver slices
    llama-md specialty eval --file my_set.jsonl --json

Routing prints one JSON object per line: {question, specialty, name, p, top3: [[slug, p], ...], unsure};
``specialty`` is always the most probable class, also when ``unsure`` is true. The classes are in
assistant/specialties/taxonomy.toml; the router lives in ~/.cache/llama-md/specialty/<fingerprint>
($LLAMA_MD_SPECIALTY_CACHE).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from assistant.config import ConfigError, Settings, load_settings

ACTIONS = ("train", "eval")


@dataclass
class SpecialtyConfig:
    settings: Settings
    action: str  # route | train | eval
    questions: list[str] = field(default_factory=list)
    force: bool = False
    file: Path | None = None  # eval: question file
    as_json: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs="*", metavar="QUESTION|train|eval", help="a question, or train / eval")
    parser.add_argument(
        "--from-file", type=Path, help="route every non-blank line of this file (default: none)"
    )
    parser.add_argument("--json", action="store_true", help="train / eval: print JSON (default: text)")
    parser.add_argument(
        "--force", action="store_true", help="with train: rebuild even if cached (default: no)"
    )
    parser.add_argument(
        "--file", type=Path, help="with eval: question file (default: the held-out patient questions)"
    )
    parser.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")
    parser.add_argument("--data-dir", help="folder with specialties/*.csv (default: $LLAMA_MD_DATA_DIR)")


def config_from_args(args: argparse.Namespace) -> SpecialtyConfig:
    """Raises ConfigError when there is nothing to route or a given file does not exist."""
    settings = load_settings({"home": args.home, "data_dir": args.data_dir})
    for flag, path in (("--from-file", args.from_file), ("--file", args.file)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path} does not exist: give a text file with one question per line")
    if args.words and args.words[0] in ACTIONS and len(args.words) == 1:
        return SpecialtyConfig(settings, args.words[0], force=args.force, file=args.file, as_json=args.json)
    questions = [" ".join(args.words)] if args.words else []
    if args.from_file:
        questions += args.from_file.read_text(encoding="utf-8").splitlines()
    questions = [q.strip() for q in questions if q.strip()]
    if not questions:
        raise ConfigError(
            'give a question or --from-file: llama-md specialty "my knee clicks when I climb stairs"'
        )
    return SpecialtyConfig(settings, "route", questions, as_json=args.json)


def main(cfg: SpecialtyConfig) -> int:
    """Route, train or evaluate; eval returns 0 whatever the figures (they are measurements, not a gate)."""
    from assistant.specialties.router import build_router, load_router

    if cfg.action == "train":
        folder, report = build_router(cfg.settings, retrain=cfg.force)
        print(
            json.dumps({"model_dir": str(folder), "trained": report is not None, **(report or {})}, indent=1)
        )
        return 0
    router = load_router(cfg.settings)
    if cfg.action == "route":
        for prediction in router.predict(cfg.questions):
            print(json.dumps(prediction.to_json(), ensure_ascii=False))
        return 0
    from assistant.evaluation.specialty_suite import TEST_FILE, evaluate_router, format_report

    result = evaluate_router(router, cfg.file or TEST_FILE, cfg.settings.data_dir)
    print(json.dumps(result, indent=1) if cfg.as_json else format_report(result))
    return 0
