"""Export a fine-tune run (merged safetensors, GGUF, Ollama) and prove it answers and stops like base + adapter.

    python -m finetune export .llama-md/runs/smollm2-135m-chatdoctor1k-v2 --to gguf --quant f16
    python -m finetune export RUN_DIR --to gguf --quant q4_k_m
    python -m finetune export RUN_DIR --to ollama --quant q8_0     # then: cd RUN_DIR/export/ollama && ollama create NAME -f Modelfile
    python -m finetune export RUN_DIR --to merged --no-parity
    llama-md export RUN_DIR ...                                    # the same command

Writes RUN_DIR/export/{merged,gguf,ollama}/ and RUN_DIR/export/parity-<target>-<quant>.json/.md; exits non-zero
when the exported model's held-out stop rate is more than --max-stop-rate-drop below the adapter's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assistant.finetuning.export import QUANTS, TARGETS, ExportConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="fine-tune run folder (holds adapter/)")
    parser.add_argument("--to", choices=TARGETS, default="gguf", help="what to export (default: gguf)")
    parser.add_argument(
        "--quant", choices=QUANTS, default="f16", help="GGUF weight type (default: f16; ignored for merged)"
    )
    parser.add_argument("--no-parity", dest="parity", action="store_false", help="skip the parity proof")
    parser.add_argument(
        "--max-stop-rate-drop",
        type=float,
        default=0.05,
        help="fail when the exported stop rate is more than this share below the adapter's (default: 0.05)",
    )
    parser.add_argument(
        "--stop-prompts",
        type=int,
        default=None,
        help="held-out prompts replayed (default: the run's stop_prompts)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="answer budget, tokens (default: the run's max_new_tokens)",
    )
    parser.add_argument("--home", type=Path, default=None, help="llama-md home (default: $LLAMA_MD_HOME)")
    parser.add_argument(
        "--llama-cpp-dir",
        type=Path,
        default=None,
        help="folder with convert_hf_to_gguf.py and gguf-py/ (default: $LLAMA_MD_LLAMA_CPP_DIR)",
    )


def config_from_args(args: argparse.Namespace) -> ExportConfig:
    """Flags -> ExportConfig (validated: raises ExportError naming every bad flag)."""
    return ExportConfig(
        run_dir=args.run_dir,
        to=args.to,
        quant=args.quant,
        parity=args.parity,
        max_stop_rate_drop=args.max_stop_rate_drop,
        stop_prompts=args.stop_prompts,
        max_new_tokens=args.max_new_tokens,
        home=args.home,
        llama_cpp_dir=args.llama_cpp_dir,
    )


def main(cfg: ExportConfig) -> int:
    """Export, check parity, print where things are; 0 on success (errors raise ExportError)."""
    from assistant.finetuning.export import main as export

    report = export(cfg)
    if report:
        print(
            f"export: {report['exported']}; held-out stop rate {report['stop_rate_exported']} exported vs "
            f"{report['stop_rate_reference']} base + adapter, first-32-token agreement {report['first_32_agreement']:.2f}, "
            f"log-prob diff {report['mean_logprob_diff']}; report {cfg.export_dir}/parity-{report['target']}-{report['quant']}.md"
        )
    else:
        print(f"export: written under {cfg.export_dir} (parity not checked)")
    return 0
