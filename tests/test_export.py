"""`finetune export`: merged / GGUF / Ollama exports of a real (tiny) trained run carry the chat template and stop
tokens, and the parity proof compares them with base + adapter; the real SmolLM2 GGUF stops in llama.cpp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from assistant.adapters import AdapterInfo
from assistant.finetuning.export import ExportConfig, ExportError, check_base_precision
from assistant.finetuning.export import main as export
from assistant.finetuning.gguf import gguf_metadata
from tests.helpers import lora_b_norm, make_adapter, tiny_config

PARITY_KEYS = {
    "stop_rate_reference", "stop_rate_exported", "chat_stop_rate_reference", "chat_stop_rate_exported",
    "first_32_agreement", "mean_common_prefix_tokens", "mean_logprob_reference", "mean_logprob_exported",
    "mean_logprob_diff", "heldout_prompts", "passed", "gate", "notes",
}  # fmt: skip
FAST = dict(stop_prompts=4, max_new_tokens=12)


def _llama_cpp_ready() -> bool:
    import importlib.util

    if (
        importlib.util.find_spec("sentencepiece") is None
    ):  # the converter imports it (pip install -e '.[serve]')
        return False
    try:
        import llama_cpp  # noqa: F401

        from assistant.finetuning.gguf import llama_cpp_dir

        llama_cpp_dir()  # $LLAMA_MD_LLAMA_CPP_DIR or the default folder
        return True
    except Exception:  # noqa: BLE001
        return False


needs_llama_cpp = pytest.mark.skipif(not _llama_cpp_ready(), reason="llama-cpp-python, its converter or sentencepiece missing (make serve-setup)")  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tiny_dataset, tmp_path_factory) -> Path:
    """A real 4-step LoRA run on the tiny Llama (lr 1e-2, so the adapter moves the model)."""
    from assistant.finetuning.training import main as train

    run = tmp_path_factory.mktemp("export") / "run"
    train(tiny_config(tiny_model, tiny_dataset, run, stop_prompts=4, max_new_tokens=8))
    assert lora_b_norm(run / "adapter") > 0
    return run


def _ids(tokenizer, info: AdapterInfo, question: str) -> list[int]:
    from assistant.finetuning.dataprep import chat_messages

    text = tokenizer.apply_chat_template(chat_messages(info.system_prompt, question), tokenize=False, add_generation_prompt=True)  # fmt: skip
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def merged_report(tiny_run) -> dict:
    return export(ExportConfig(tiny_run, to="merged", **FAST))


def test_merged_export_matches_base_plus_adapter_and_stops_on_end_of_turn(
    tiny_run, tiny_model, merged_report
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from assistant.finetuning.evaluation import generate_token_ids

    merged_dir = tiny_run / "export" / "merged"
    info = AdapterInfo.load(merged_dir)
    assert info.full_model and info.chat_template == AdapterInfo.load(tiny_run / "adapter").chat_template
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = GenerationConfig.from_pretrained(merged_dir).eos_token_id
    assert end_of_turn in (eos if isinstance(eos, list) else [eos])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), tiny_run / "adapter"
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompt = [_ids(tokenizer, info, "Doctor, I have had a cough for 3 days. What should I do?")]
    outs = [
        generate_token_ids(m, tokenizer, prompt, [end_of_turn], max_new_tokens=12) for m in (merged, adapted)
    ]
    assert outs[0] == outs[1]
    ids = torch.tensor(prompt)
    with torch.no_grad():  # the merge changed the weights: the adapter is in them
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-3)
    assert PARITY_KEYS <= merged_report.keys() and merged_report["passed"]
    assert merged_report["first_32_agreement"] == 1.0 and abs(merged_report["mean_logprob_diff"]) < 1e-3
    assert merged_report["heldout_prompts"] == 4  # the run's held-out split was rebuilt and checked
    md = (tiny_run / "export" / "parity-merged-float32.md").read_text()
    assert "held-out stop rate" in md and "passed" in md


def test_stop_rate_gate_fails_export_naming_both_rates(tiny_run, merged_report):
    """A gate the export can't meet (exported must stop 100 points more often than the adapter) fails it."""
    with pytest.raises(ExportError) as err:
        export(ExportConfig(tiny_run, to="merged", max_stop_rate_drop=-1.0, **FAST))
    message = str(err.value)
    ref, exp = merged_report["stop_rate_reference"], merged_report["stop_rate_exported"]
    assert f"{exp:.2f} exported vs {ref:.2f} reference" in message
    assert json.loads((tiny_run / "export" / "parity-merged-float32.json").read_text())["passed"] is False


@pytest.fixture(scope="module")
def gguf_report(tiny_run, merged_report) -> dict:
    return export(ExportConfig(tiny_run, to="gguf", quant="f16", **FAST))


@needs_llama_cpp
def test_gguf_carries_the_chat_template_and_end_of_turn_and_agrees_with_the_adapter(tiny_run, gguf_report):
    from transformers import AutoTokenizer

    path = tiny_run / "export" / "gguf" / "model-f16.gguf"
    info = AdapterInfo.load(tiny_run / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "adapter")
    meta = gguf_metadata(path)
    assert meta["chat_template"] == info.chat_template
    assert meta["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert PARITY_KEYS <= gguf_report.keys() and gguf_report["passed"]
    assert (
        gguf_report["prompt_tokens_identical"] == 1.0
    )  # llama.cpp tokenizes the rendered prompt like transformers
    assert gguf_report["first_32_agreement"] >= 0.5 and abs(gguf_report["mean_logprob_diff"]) < 0.05


@needs_llama_cpp
def test_ollama_modelfile_fields_and_template_render_like_the_jinja_template(tiny_run, gguf_report):
    from transformers import AutoTokenizer

    from assistant.finetuning.modelfile import parse_modelfile, render_go_template, render_jinja

    export(ExportConfig(tiny_run, to="ollama", quant="f16", parity=False))
    folder = tiny_run / "export" / "ollama"
    fields = parse_modelfile((folder / "Modelfile").read_text())
    info = AdapterInfo.load(tiny_run / "adapter")
    assert fields["FROM"] == "./model-f16.gguf" and (folder / "model-f16.gguf").is_file()
    assert fields["SYSTEM"] == info.system_prompt
    params = dict(fields["PARAMETER"])
    assert [v for k, v in fields["PARAMETER"] if k == "stop"] == info.stop_tokens == ["<|im_end|>"]
    assert params["temperature"] == 0.6 and params["repeat_penalty"] == 1.1
    conversation = [
        {"role": "system", "content": info.system_prompt},
        {"role": "user", "content": "I am pregnant and tired."},
        {"role": "assistant", "content": "Ask for a blood test for anaemia."},
        {"role": "user", "content": "Should I take iron?"},
    ]
    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "adapter")
    jinja = render_jinja(tokenizer, info, conversation, generation=True)
    assert render_go_template(fields["TEMPLATE"], info.system_prompt, conversation) == jinja
    assert jinja.endswith("<|im_start|>assistant\n")


def test_qlora_base_only_available_quantized_is_refused(tiny_model, tmp_path):
    quantized = tmp_path / "base-4bit"
    shutil.copytree(tiny_model, quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quantized / "config.json").write_text(json.dumps(config))
    check_base_precision(str(tiny_model))  # the full-precision base passes
    with pytest.raises(ExportError, match="can only be loaded quantized .*bitsandbytes.*Fix:"):
        check_base_precision(str(quantized))


def test_a_qlora_run_is_merged_into_the_full_precision_base_and_says_so(tiny_run, tmp_path):
    from safetensors.torch import load_file

    from assistant.config import load_settings
    from assistant.finetuning.export import export_merged

    run = tmp_path / "qlora-run"
    shutil.copytree(tiny_run / "adapter", run / "adapter")
    config = json.loads((tiny_run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "quantization": "4bit"}))
    done = export_merged(
        ExportConfig(run, to="merged", parity=False), load_settings({"home": str(tmp_path)}, environ={})
    )
    assert any("4bit-quantized base (QLoRA)" in n and "not into quantized weights" in n for n in done.notes)
    weights = load_file(done.path / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())  # full precision, never bnb-packed


def test_a_folder_without_adapter_is_refused_with_what_to_pass(tmp_path):
    with pytest.raises(ExportError, match="--quant must be one of .*got .q3.*not a fine-tune run folder"):
        ExportConfig(tmp_path, to="gguf", quant="q3")


def test_finetune_export_is_a_subcommand_of_both_front_ends():
    from assistant.cli import build_parser

    args = build_parser().parse_args(["export", "RUN", "--to", "ollama", "--quant", "q8_0", "--no-parity"])
    assert (args.to, args.quant, args.parity) == ("ollama", "q8_0", False)
    assert build_parser().parse_args(["finetune", "--preset", "smollm2-135m"]).preset == "smollm2-135m"


@pytest.mark.slow
@needs_llama_cpp
def test_real_smollm2_gguf_answers_and_stops_in_llama_cpp(settings, tmp_path):
    """The bundled SmolLM2 (+ an untrained adapter) exported to GGUF f16 ends its answer on <|im_end|>."""
    from llama_cpp import Llama

    run = make_adapter(settings, run_name=f"export-{tmp_path.name}").parent
    export(ExportConfig(run, to="gguf", quant="f16", parity=False, home=settings.home))
    llm = Llama(str(run / "export" / "gguf" / "model-f16.gguf"), n_ctx=512, verbose=False)
    info = AdapterInfo.load(run / "adapter")
    prompt = f"<|im_start|>system\n{info.system_prompt}<|im_end|>\n<|im_start|>user\nHello, who are you?<|im_end|>\n<|im_start|>assistant\n"
    out = llm.create_completion(prompt, max_tokens=128, temperature=0.0)
    assert out["choices"][0]["finish_reason"] == "stop" and out["choices"][0]["text"].strip()
