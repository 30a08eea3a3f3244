"""Presets, config validation, precision choice and quantization refusal: no model needed."""

from __future__ import annotations

import pytest

from assistant.cli import build_parser
from assistant.cli import main as llama_md
from assistant.cli.finetune import config_from_args, list_presets
from assistant.finetuning.config import FinetuneConfig, FinetuneConfigError
from assistant.finetuning.modeling import QuantizationError, check_quantization
from assistant.finetuning.precision import PrecisionError, resolve_precision
from assistant.finetuning.presets import PRESETS, PresetError, get_preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_to_a_valid_config(name, tmp_path):
    preset = get_preset(name)
    cfg = FinetuneConfig.from_preset(name, dataset="x.jsonl", home=tmp_path)
    assert cfg.model == preset.model_id
    assert cfg.r == preset.r and cfg.learning_rate == preset.learning_rate
    assert cfg.target_modules == list(preset.target_modules)
    assert cfg.quantization == preset.quantization
    assert preset.config_url.startswith("https://huggingface.co/") and preset.config_url.endswith(
        "config.json"
    )
    assert cfg.output_dir.parent == tmp_path / "runs" and cfg.output_dir.name.startswith(name + "-")


def test_explicit_values_override_the_preset():
    cfg = FinetuneConfig.from_preset(
        "llama3.1-8b", r=4, learning_rate=1e-3, no_quantization=True, dataset="d"
    )
    assert (cfg.r, cfg.learning_rate, cfg.quantization) == (4, 1e-3, None)
    assert FinetuneConfig.from_preset("llama3.1-8b", dataset="d").quantization == "4bit"


def test_unknown_preset_lists_the_valid_ones(capsys):
    with pytest.raises(PresetError) as err:
        get_preset("llama9")
    assert all(name in str(err.value) for name in PRESETS)
    assert llama_md(["finetune", "--preset", "llama9", "--dataset", "d.jsonl"]) == 2
    assert "smollm2-135m" in capsys.readouterr().err


def test_list_presets_prints_every_preset_with_its_source():
    text = list_presets()
    for preset in PRESETS.values():
        assert preset.name in text and preset.config_url in text


def test_config_collects_every_problem_with_the_flag_to_change():
    with pytest.raises(FinetuneConfigError) as err:
        FinetuneConfig.from_preset("smollm2-135m", freeze_ratio=1.5, r=0, precision="fp8", save_steps=0)
    text = str(err.value)
    assert "--freeze-ratio" in text and "--r" in text and "--precision" in text and "--save-steps" in text


def test_cli_flags_are_kebab_case_and_reach_the_config(tmp_path):
    args = build_parser().parse_args(
        [
            "finetune",
            "--dataset",
            "d.jsonl",
            "--max-samples",
            "10",
            "--freeze-ratio",
            "0.5",
            "--quantization",
            "none",
            "--home",
            str(tmp_path),
            "--lora-alpha",
            "8",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.max_samples, cfg.freeze_ratio, cfg.quantization, cfg.lora_alpha) == (10, 0.5, None, 8)
    assert cfg.home == tmp_path


def test_precision_is_chosen_for_the_hardware():
    assert resolve_precision("auto", "cpu", cpu_flags=["avx512_bf16"]).mode == "bf16"
    cpu_bf16 = resolve_precision("auto", "cpu", cpu_flags=["amx_bf16"])
    assert cpu_bf16.model_dtype == "float32"  # autocast keeps fp32 master weights
    assert resolve_precision("auto", "cpu", cpu_flags=[]).mode == "fp32"
    assert resolve_precision("auto", "cuda", cuda_bf16=True).mode == "bf16"
    t4 = resolve_precision("auto", "cuda", cuda_bf16=False, quantization="4bit")
    assert (t4.mode, t4.model_dtype) == ("fp16", "float16")
    with pytest.raises(PrecisionError, match="fp32"):
        resolve_precision("fp16", "cpu")


def test_fp16_with_bf16_weights_is_refused_up_front_with_the_fix():
    """The T4 crash: fp16 GradScaler meets bf16 tensors from k-bit preparation."""
    with pytest.raises(PrecisionError) as err:
        resolve_precision("fp16", "cuda", cuda_bf16=False, quantization="4bit", model_dtype="bfloat16")
    assert "BFloat16" in str(err.value) and "Fix" in str(err.value)
    with pytest.raises(PrecisionError, match="no bf16 support"):
        resolve_precision("bf16", "cuda", cuda_bf16=False)


def test_quantization_without_cuda_is_a_clear_error():
    with pytest.raises(QuantizationError) as err:
        check_quantization("4bit", "cpu")
    assert "CUDA" in str(err.value) and "--quantization none" in str(err.value)
    check_quantization(None, "cpu")


def test_qlora_preset_on_this_machine_fails_before_loading(tmp_path, capsys):
    code = llama_md(
        [
            "finetune",
            "--preset",
            "llama3.1-8b",
            "--dataset",
            str(tmp_path / "d.jsonl"),
            "--home",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_early_stopping_without_evaluations_is_refused():
    with pytest.raises(FinetuneConfigError, match="--early-stopping-patience"):
        FinetuneConfig.from_preset("smollm2-135m", early_stopping_patience=2, eval_steps=0)


def test_every_documented_flag_still_parses_and_reaches_the_config(tmp_path):
    """The flags are generated from FinetuneConfig; each name used before that (README, tests, demo) still works."""
    args = build_parser().parse_args(
        ["finetune", "--preset", "smollm2-135m", "--model", "m", "--dataset", "d.jsonl"]
        + ["--output-dir", str(tmp_path / "run"), "--home", str(tmp_path), "--system-prompt", "Be brief."]
        + ["--max-samples", "10", "--eval-fraction", "0.1", "--eval-samples", "4", "--specialty", "pregnancy"]
        + ["--max-seq-length", "256", "--r", "8", "--lora-alpha", "16", "--lora-dropout", "0.1"]
        + ["--target-modules", "q_proj", "v_proj", "--learning-rate", "1e-3", "--batch-size", "2"]
        + ["--gradient-accumulation-steps", "3", "--no-gradient-checkpointing", "--freeze-ratio", "0.25"]
        + ["--precision", "fp32", "--model-dtype", "float32", "--epochs", "2", "--max-steps", "7"]
        + ["--warmup-ratio", "0.1", "--batching", "padded", "--loss", "model", "--save-steps", "5"]
        + ["--eval-steps", "0", "--save-total-limit", "2", "--logging-steps", "1", "--overwrite"]
        + [
            "--nan-patience",
            "2",
            "--max-rollbacks",
            "1",
            "--inject-nan-steps",
            "3",
            "4",
            "--stop-prompts",
            "0",
        ]
        + ["--max-new-tokens", "32", "--sample-answers", "1", "--no-load-best", "--merge", "--seed", "7"]
    )
    cfg = config_from_args(args)
    assert (cfg.model, cfg.dataset, cfg.output_dir, cfg.home) == ("m", "d.jsonl", tmp_path / "run", tmp_path)
    assert (cfg.system_prompt, cfg.max_samples, cfg.eval_fraction, cfg.eval_samples) == (
        "Be brief.",
        10,
        0.1,
        4,
    )
    assert (cfg.specialty, cfg.max_seq_length, cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (
        "pregnancy",
        256,
        8,
        16,
        0.1,
    )
    assert (cfg.target_modules, cfg.learning_rate, cfg.batch_size) == (["q_proj", "v_proj"], 1e-3, 2)
    assert (cfg.gradient_accumulation_steps, cfg.gradient_checkpointing, cfg.freeze_ratio) == (3, False, 0.25)
    assert (cfg.precision, cfg.model_dtype, cfg.epochs, cfg.max_steps) == ("fp32", "float32", 2.0, 7)
    assert (cfg.warmup_ratio, cfg.batching, cfg.loss, cfg.save_steps) == (0.1, "padded", "model", 5)
    assert (cfg.eval_steps, cfg.save_total_limit, cfg.logging_steps, cfg.overwrite) == (0, 2, 1, True)
    assert (cfg.nan_patience, cfg.max_rollbacks, cfg.inject_nan_steps, cfg.stop_prompts) == (2, 1, [3, 4], 0)
    assert (cfg.max_new_tokens, cfg.sample_answers, cfg.load_best_model_at_end, cfg.merge) == (
        32,
        1,
        False,
        True,
    )
    assert cfg.seed == 7 and not cfg.resume and not cfg.full
    resumed = config_from_args(
        build_parser().parse_args(["finetune", "--dataset", "d", "--resume", "--full"])
    )
    assert resumed.resume and resumed.full and resumed.quantization is None


def test_unset_flags_take_the_preset_then_the_field_defaults(tmp_path):
    cfg = config_from_args(build_parser().parse_args(["finetune", "--dataset", "d", "--home", str(tmp_path)]))
    default = FinetuneConfig.from_preset("smollm2-135m", dataset="d", home=tmp_path)
    assert {k: v for k, v in cfg.to_dict().items() if k != "output_dir"} == {
        k: v for k, v in default.to_dict().items() if k != "output_dir"
    }
    qlora = config_from_args(
        build_parser().parse_args(["finetune", "--preset", "llama3.1-8b", "--dataset", "d"])
    )
    assert qlora.quantization == "4bit" and qlora.gradient_checkpointing is True
    plain = ["finetune", "--preset", "llama3.1-8b", "--dataset", "d", "--quantization", "none"]
    assert config_from_args(build_parser().parse_args(plain)).quantization is None
