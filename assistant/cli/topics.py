"""Model the topics of a patient-question dataset and pick the specialty.

    llama-md topics ../shared/datasets/chatdoctor5k.json
    llama-md topics ../shared/datasets/medquad.jsonl --text-column question --seed 0
    llama-md topics ruslanmv/ai-medical-chatbot --out /tmp/topics     # hub id (online)
    llama-md topics questions.csv --specialty pregnancy                # override the pick

Writes DIR/topics.json and DIR/topics.png (DIR default: $LLAMA_MD_HOME/topics). A topics.json in the home's
topics folder makes its "specialty" the settings' specialty for ingest, fine-tuning and the UI.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings, load_settings


@dataclass
class TopicsConfig:
    settings: Settings
    dataset: str
    text_column: str | None = None
    out: Path | None = None  # default: settings.topics_dir
    specialty: str | None = None  # overrides the pick


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", metavar="DATASET", help="json / jsonl / csv / parquet file, or a hub dataset id"
    )
    parser.add_argument(
        "--text-column",
        help="question column (default: found from the schema: input, Patient, question, ...)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: $LLAMA_MD_HOME/topics)")
    parser.add_argument("--seed", type=int, help="UMAP / KMeans seed (default: settings seed = 0)")
    parser.add_argument("--specialty", help="override the pick with this corpus name (e.g. pregnancy)")
    parser.add_argument("--home", help="llama-md home folder (default: $LLAMA_MD_HOME or ./.llama-md)")


def config_from_args(args: argparse.Namespace) -> TopicsConfig:
    settings = load_settings({"home": args.home, "seed": args.seed})
    return TopicsConfig(settings, args.dataset, args.text_column, args.out, args.specialty)


def main(cfg: TopicsConfig) -> int:
    """Model the topics, write topics.json / topics.png, print the table and the pick."""
    from assistant.topics import model_topics, write_report

    report = model_topics(cfg.dataset, cfg.settings, text_column=cfg.text_column, specialty=cfg.specialty)
    json_path, png_path = write_report(report, cfg.out or cfg.settings.topics_dir)

    print(
        f"\n{report.n_questions} questions from column {report.text_column!r} of {report.dataset}"
        + (f" (skipped: {report.skipped})" if report.skipped else "")
        + f"; {report.n_topics} topics, top {len(report.topics)}:"
    )
    print(f"{'#':>3} {'size':>6} {'share':>6}  {'specialty':<14} {'sim':>5}  keywords")
    for t in report.topics:
        print(
            f"{t.id:>3} {t.size:>6} {t.share:>6.1%}  {t.specialty:<14} {t.similarity:>5.2f}  "
            f"{', '.join(t.keywords[:6])}"
        )
        print(f"{'':>24}e.g. {t.examples[0][:100]!r}")
    print("specialty shares: " + ", ".join(f"{k} {v:.1%}" for k, v in report.specialty_shares.items()))
    how = "given with --specialty" if report.overridden else "most questions among specialties with a corpus"
    print(f"pick: {report.specialty or '(none: no topic matched a corpus)'} ({how})")
    print(f"wrote {json_path} and {png_path} in {report.seconds:.1f} s (seed {report.seed})")
    return 0
