"""The medical retriever and re-ranker: build them once per machine, or re-embed a store.

    llama-md retriever train                 # fine-tuned bi-encoder + cross-encoder re-ranker
    llama-md retriever train --force         # rebuild even when cached
    llama-md retriever train --if-data       # set-up: say so and succeed when no data folder is set
    llama-md retriever reembed               # the store's chunks (metadata kept) with settings.embedding_model
    LLAMA_MD_EMBEDDING_MODEL=llama-md/minilm-medical llama-md retriever reembed

Models land in ``~/.cache/llama-md/{retriever,reranker}/<fingerprint>`` ($LLAMA_MD_MODEL_CACHE); the settings name
them as ``embedding_model = "llama-md/minilm-medical"`` and ``reranker_model = "llama-md/minilm-medical-reranker"``
(``rerank = auto`` uses the re-ranker whenever it is built). Training data and figures: docs/results.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from assistant.config import Settings, load_settings


@dataclass
class RetrieverConfig:
    settings: Settings
    action: str  # train | reembed
    force: bool = False
    if_data: bool = False
    chroma_url: str | None = None
    as_json: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("train", "reembed"), help="what to do")
    parser.add_argument(
        "--force", action="store_true", help="with train: rebuild even if cached (default: no)"
    )
    parser.add_argument(
        "--if-data", action="store_true", help="with train: succeed with a notice when no data folder is set"
    )
    parser.add_argument(
        "--embedding-model", help="with reembed: the model to re-embed with (default: settings)"
    )
    parser.add_argument("--chroma-url", help="a Chroma server http://HOST:PORT instead of the embedded store")
    parser.add_argument("--home", help="llama-md home (default: $LLAMA_MD_HOME or ./.llama-md)")
    parser.add_argument("--json", action="store_true", help="print JSON (default: text)")


def config_from_args(args: argparse.Namespace) -> RetrieverConfig:
    settings = load_settings({"home": args.home, "embedding_model": args.embedding_model})
    return RetrieverConfig(settings, args.action, args.force, args.if_data, args.chroma_url, args.json)


def main(cfg: RetrieverConfig) -> int:
    if cfg.action == "reembed":
        from assistant.rag.reembed import reembed_store

        report = reembed_store(cfg.settings, chroma_url=cfg.chroma_url)
        if cfg.as_json:
            print(json.dumps(report.__dict__))
        else:
            print(
                f"re-embedded {report.chunks} chunks: {report.old_model} -> {report.new_model} ({report.seconds} s)"
            )
        return 0
    from assistant.rag.trained import build_models

    if cfg.settings.data_dir is None and cfg.if_data:
        print(
            "retriever: no data folder (LLAMA_MD_DATA_DIR), so the bundled all-MiniLM-L6-v2 stays, no re-ranker"
        )
        return 0
    reports = build_models(cfg.settings, force=cfg.force)
    if cfg.as_json:
        print(json.dumps({k: r.to_dict() for k, r in reports.items()}))
        return 0
    for kind, report in reports.items():
        how = "cached" if report.cached else f"trained in {report.seconds.get('train', 0):.0f} s"
        print(f"{kind}: {report.folder} ({how})")
    return 0
