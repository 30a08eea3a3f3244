"""Fine-tune a small Llama on patient-doctor dialogues (LoRA / QLoRA / full), evaluate it, save the adapter.

    llama-md finetune --list-presets
    # the embedded model, offline (ChatDoctor-5k from $LLAMA_MD_DATA_DIR/datasets/chatdoctor5k.json):
    llama-md finetune --preset smollm2-135m --max-samples 1000 --eval-samples 200
    # RAG task (RAFT): MedQuAD question + k numbered passages -> quote and cite [n], mixed with ChatDoctor
    # (800 + 200 pairs, max_seq_length 1024: ~36 min per epoch on 2 CPU cores; benchmarks/rag_data_stats.py)
    llama-md finetune --preset smollm2-135m --task rag --rag-samples 800 --mix-samples 200 --eval-samples 50
    # a short smoke run
    llama-md finetune --max-samples 64 --eval-samples 16 --max-steps 10 --stop-prompts 8
    # Llama 3.2 1B (online, license accepted on the hub, HF_TOKEN set), on a GPU:
    llama-md finetune --preset llama3.2-1b --dataset ruslanmv/ai-medical-chatbot --max-samples 20000
    # QLoRA 8B on one CUDA GPU (pip install -e '.[gpu]'):
    llama-md finetune --preset llama3.1-8b
    # continue an interrupted run / several processes (DDP; `python -m finetune` is the same command):
    llama-md finetune --output-dir .llama-md/runs/smollm2-135m-20250101-120000 --resume
    accelerate launch --num_processes 2 -m finetune --preset llama3.2-1b

Every flag is a field of FinetuneConfig (assistant/finetuning/config.py), generated with transformers'
HfArgumentParser: help and default live there once. A flag left out takes the preset's value or the field's
default. The adapter lands in <output-dir>/adapter/ with the chat template, system prompt and stop tokens the chat
will use (`llama-md chat` picks the newest run).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from pathlib import Path

from assistant.config import field_docs, load_settings
from assistant.finetuning.config import (
    BATCHING,
    FROM_PRESET,
    LOSSES,
    PRECISIONS,
    TASKS,
    FinetuneConfig,
    FinetuneConfigError,
)
from assistant.finetuning.presets import PRESETS, get_preset

#: Flags with a fixed set of values (``--quantization none`` forces no quantization over a QLoRA preset).
CHOICES = {
    "quantization": ("4bit", "8bit", "none"),
    "precision": PRECISIONS,
    "model_dtype": ("float32", "bfloat16", "float16"),
    "batching": BATCHING,
    "loss": LOSSES,
    "task": TASKS,
}
#: Fields that are not flags of their own.
HIDDEN = {"no_quantization": "set by --quantization none", "inject_nan_steps": "testing aid"}
#: Flag names kept from before the flags were generated: alias -> (field, value it sets).
ALIASES = {"--no-load-best": ("load_best_model_at_end", False)}


def list_presets() -> str:
    """The presets as a table: name, model, LoRA r / alpha, learning rate, sequence length, batch, source."""
    rows = [
        f"{'name':<14} {'model':<38} {'r':>3} {'alpha':>5} {'lr':>7} {'seq':>5} {'batch':>7} quant  config"
    ]
    for p in PRESETS.values():
        rows.append(
            f"{p.name:<14} {p.model_id:<38} {p.r:>3} {p.lora_alpha:>5} {p.learning_rate:>7.0e} "
            f"{p.max_seq_length:>5} {p.batch_size:>3}x{p.gradient_accumulation_steps:<3} "
            f"{p.quantization or '-':<6} {p.config_url}"
        )
    return "\n".join(rows)


class _ListPresets(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(list_presets())
        parser.exit()


#: Fields whose command-line default comes from the settings (their docstrings say so).
FROM_SETTINGS = ("dataset", "mix_dataset", "home", "seed")
#: Default --dataset per --task, under ``$LLAMA_MD_DATA_DIR/datasets``.
TASK_DATASETS = {"chat": "chatdoctor5k.json", "rag": "medquad.jsonl"}


def _help(doc: str, field: dataclasses.Field) -> str:
    """A field's docstring as plain help text, with its default unless the docstring states it."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "").replace("%", "%%")
    if field.name in FROM_PRESET:
        return f"{text} (default: the preset's)"
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if field.name in FROM_SETTINGS or value in (None, "", Path(), []):
        return text
    return f"{text} (default: {value})"


def _is_optional_bool(field: dataclasses.Field) -> bool:
    hint = typing.get_type_hints(FinetuneConfig)[field.name]
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and set(typing.get_args(hint)) == {
        bool,
        type(None),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per FinetuneConfig field (kebab-case), plus --list-presets and the kept aliases."""
    from transformers import HfArgumentParser

    generated = HfArgumentParser(FinetuneConfig, add_help=False)
    docs, fields = field_docs(FinetuneConfig), {f.name: f for f in dataclasses.fields(FinetuneConfig)}
    for action in generated._actions:
        field = fields[action.dest]
        # kebab-case only: drop HfArgumentParser's --snake_case spelling where a kebab one exists
        kebab = [o for o in action.option_strings if "_" not in o]
        action.option_strings = kebab or action.option_strings
        action.default = (
            argparse.SUPPRESS
        )  # unset flags stay unset: the preset or the field default fills them
        if action.dest in CHOICES and action.const is None:
            action.choices = CHOICES[action.dest]
        if action.dest in HIDDEN:
            action.help = argparse.SUPPRESS
        elif isinstance(action, argparse._StoreFalseAction):
            action.help = f"= --{action.dest.replace('_', '-')} false"
        else:
            action.help = _help(docs[action.dest], field)
        if _is_optional_bool(field) and action.nargs is None:  # --flag alone means True, as for plain bools
            action.nargs, action.const = "?", True
        if action.nargs == "?" and action.const is True:
            action.metavar = "BOOL"
        if action.dest == "inject_nan_steps":
            action.nargs = "*"
    parser._add_container_actions(generated)  # what argparse's parents=[...] does
    for name, field in fields.items():
        if _is_optional_bool(field):  # --no-gradient-checkpointing overrides a preset that turns it on
            flag = f"--{name.replace('_', '-')}"
            parser.add_argument(
                f"--no-{flag[2:]}",
                dest=name,
                action="store_false",
                default=argparse.SUPPRESS,
                help=f"= {flag} false",
            )
    for alias, (dest, value) in ALIASES.items():
        parser.add_argument(
            alias, dest=dest, action="store_const", const=value, default=argparse.SUPPRESS, help=f"= --{dest}"
        )
    parser.add_argument("--list-presets", action=_ListPresets, nargs=0, help="print the presets and exit")


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The run's FinetuneConfig: the flags given, over the preset, over the field defaults.

    ``--dataset`` (per ``--task``, :data:`TASK_DATASETS`), ``--mix-dataset``, ``--home`` and ``--seed`` default to
    the settings (``$LLAMA_MD_DATA_DIR``, ``$LLAMA_MD_HOME``).

    Raises:
        PresetError: unknown ``--preset`` (lists the valid ones).
        FinetuneConfigError: invalid values, or no dataset given and no data folder set.
    """
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    preset = given.pop("preset", FinetuneConfig.preset)
    get_preset(preset)  # an unknown name lists the valid ones before anything else
    settings = load_settings({"home": given.get("home")})
    given["home"] = settings.home
    given.setdefault("seed", settings.seed)
    if given.get("quantization") == "none":
        given["quantization"], given["no_quantization"] = None, True
    task = given.get("task", FinetuneConfig.task)
    if "dataset" not in given and settings.data_dir is not None:
        given["dataset"] = str(
            settings.data_dir / "datasets" / TASK_DATASETS.get(task, TASK_DATASETS["chat"])
        )
    if task == "rag" and "mix_dataset" not in given and settings.data_dir is not None:
        given["mix_dataset"] = str(settings.data_dir / "datasets" / TASK_DATASETS["chat"])
    if "dataset" not in given:
        raise FinetuneConfigError(
            "No --dataset given and LLAMA_MD_DATA_DIR is unset. Fix: --dataset FILE_OR_HUB_ID "
            "(e.g. ruslanmv/ai-medical-chatbot when online) or set LLAMA_MD_DATA_DIR."
        )
    return FinetuneConfig.from_preset(preset, **given)


def main(cfg: FinetuneConfig) -> int:
    """Train, evaluate and save one run; prints where the report is."""
    from assistant.finetuning.training import main as train

    report = train(cfg)
    print(
        f"finetune: done; report in {cfg.output_dir / 'report.json'} "
        f"(held-out loss {report['eval_loss_before']} -> {report['eval_loss_after']})"
    )
    return 0
