"""Training runs on a tiny Llama (hidden 64, 2 layers, SmolLM2's tokenizer) built locally: adapter format,
loss falls, NaN guards, freezing, full fine-tuning, merge, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from assistant.adapters import AdapterInfo
from assistant.finetuning.config import FinetuneConfig
from assistant.finetuning.report import REPORT_KEYS
from assistant.finetuning.training import RunFolderError, TrainingDiverged, main
from tests.helpers import lora_b_norm, tiny_config


def test_lora_run_writes_the_shared_adapter_format_and_learns(tiny_model, tiny_dataset, tmp_path):
    report = main(tiny_config(tiny_model, tiny_dataset, tmp_path / "run"))
    run = tmp_path / "run"
    adapter = run / "adapter"
    info = AdapterInfo.load(adapter)
    assert info.base_model == str(tiny_model) and info.preset == "smollm2-135m"
    assert info.stop_tokens == ["<|im_end|>"] and info.system_prompt.startswith("If you are a doctor")
    assert "<|im_start|>" in info.chat_template and not info.full_model
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer_config.json").is_file()
    assert lora_b_norm(adapter) > 0  # LoRA B starts at zero: the adapter was trained
    assert report["eval_loss_after"] < report["eval_loss_before"]
    assert report["global_step"] == 4 and report["nan_skipped_steps"] == 0
    saved = json.loads((run / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(saved) and len(saved["samples"]) == 2
    assert json.loads((run / "config.json").read_text())["resolved"]["end_of_turn"] == "<|im_end|>"
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("tokens_per_second" in row and row["tokens_per_second"] > 0 for row in logged)
    assert (run / "loss.png").stat().st_size > 0 and any((run / "tensorboard").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]


def test_the_model_loss_trains_like_trls_fused_lm_head(tiny_model, tiny_dataset, tmp_path):
    """``--loss model`` (the CPU default, faster here) must give the same per-step losses as trl's fused head,
    padding-free batches included."""
    losses = {}
    for loss in ("fused", "model"):
        main(
            tiny_config(
                tiny_model, tiny_dataset, tmp_path / loss, loss=loss, stop_prompts=0, sample_answers=0
            )
        )
        logged = [json.loads(line) for line in (tmp_path / loss / "metrics.jsonl").read_text().splitlines()]
        losses[loss] = [row["loss"] for row in logged if "loss" in row]
    assert len(losses["model"]) == 4
    assert losses["model"] == pytest.approx(losses["fused"], rel=1e-3)


def test_a_folder_holding_a_run_is_refused_unless_overwrite(tiny_model, tiny_dataset, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(RunFolderError, match="--resume"):
        main(tiny_config(tiny_model, tiny_dataset, out, max_steps=1))
    assert (out / "config.json").read_text() == "{}"  # nothing touched
    with pytest.raises(RunFolderError, match="no checkpoint"):
        main(tiny_config(tiny_model, tiny_dataset, out, max_steps=1, resume=True))


def test_injected_nan_steps_are_skipped_rolled_back_and_the_adapter_stays_finite(
    tiny_model, tiny_dataset, tmp_path
):
    report = main(
        tiny_config(
            tiny_model,
            tiny_dataset,
            tmp_path / "run",
            max_steps=8,
            inject_nan_steps=[3, 5, 6, 7],
            nan_patience=3,
            stop_prompts=0,
            sample_answers=0,
        )
    )
    assert report["nan_skipped_steps"] == 4 and report["nan_skipped_at"] == [3, 5, 6, 7]
    assert report["rollbacks"] == 1 and report["rollback_at"] == [7]
    assert report["global_step"] == 8
    # steps 5-7 were undone (back to the checkpoint of step 4); the weights hold steps 1, 2, 4 and 8
    assert report["rolled_back_steps"] == 3 and report["applied_steps"] == 4
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert lora_b_norm(tmp_path / "run" / "adapter") > 0


def _guard_step(guard, model, optimizer, scheduler, state, *, nan: bool = False, fp16: bool = False):
    """One optimizer step as the Trainer runs it, with the guard's callbacks in the Trainer's order."""
    from transformers import TrainerControl

    args, control = SimpleNamespace(fp16=fp16), TrainerControl()
    loss = model(torch.ones(2, 4)).pow(2).mean()
    if nan:
        loss = loss * float("nan")
    elif fp16:
        loss = loss * 1e39  # finite loss in fp32, overflowing gradients
    loss.backward()
    guard.observe_loss(loss if not fp16 else loss.detach().clamp(max=1.0))
    guard.on_pre_optimizer_step(args, state, control, model=model, lr_scheduler=scheduler)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    state.global_step += 1
    guard.on_step_end(args, state, control, model=model, optimizer=optimizer, lr_scheduler=scheduler)
    return control


def test_rollback_restores_weights_optimizer_and_scheduler_state_then_lowers_the_rate(tmp_path):
    from assistant.finetuning.guards import NanGuard

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    state = SimpleNamespace(global_step=0)
    guard = NanGuard(patience=2, max_rollbacks=3)
    guard.on_train_begin(None, state, None, model=model, optimizer=optimizer, lr_scheduler=scheduler)
    for _ in range(2):
        _guard_step(guard, model, optimizer, scheduler, state)
    save_args = SimpleNamespace(output_dir=str(tmp_path), process_index=0)
    guard.on_save(save_args, state, None, model=model, optimizer=optimizer, lr_scheduler=scheduler)
    snap = guard.snapshot
    assert snap.step == 2 and snap.optimizer["state"]  # Adam's moments are in the snapshot
    _guard_step(guard, model, optimizer, scheduler, state)  # a good step after the snapshot
    _guard_step(guard, model, optimizer, scheduler, state, nan=True)
    assert scheduler.last_epoch == 3  # a skipped step does not advance the schedule
    _guard_step(guard, model, optimizer, scheduler, state, nan=True)  # second in a row: rollback

    assert guard.rollbacks == 1 and guard.rolled_back_steps == 3 and guard.applied_steps == 2
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), snap.weights[name])
    restored = optimizer.state_dict()
    for key, moments in snap.optimizer["state"].items():
        for name, value in moments.items():
            assert torch.equal(restored["state"][key][name], value), name
    assert scheduler.last_epoch == snap.scheduler["last_epoch"] == 2
    assert scheduler.base_lrs == [lr * 0.5 for lr in snap.scheduler["base_lrs"]]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(snap.scheduler["_last_lr"][0] * 0.5)
    _guard_step(guard, model, optimizer, scheduler, state)  # training goes on from there
    assert all(torch.isfinite(p).all() for p in model.parameters()) and guard.applied_steps == 3


def test_fp16_grad_scaler_overflows_are_not_nan_events():
    from assistant.finetuning.guards import NanGuard

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    guard = NanGuard(patience=1, max_rollbacks=0)
    state = SimpleNamespace(global_step=0)
    guard.on_train_begin(None, state, None, model=model, optimizer=optimizer, lr_scheduler=scheduler)
    with torch.no_grad():
        model.weight.mul_(1e30)
    control = _guard_step(guard, model, optimizer, scheduler, state, fp16=True)
    assert guard.scaler_skipped_steps == 1
    assert guard.skipped_steps == 0 and guard.rollbacks == 0 and not control.should_training_stop


def test_persistent_nan_stops_after_max_rollbacks_and_keeps_the_last_good_adapter(
    tiny_model, tiny_dataset, tmp_path
):
    with pytest.raises(TrainingDiverged, match="max-rollbacks"):
        main(
            tiny_config(
                tiny_model,
                tiny_dataset,
                tmp_path / "run",
                max_steps=8,
                inject_nan_steps=[3, 4, 5, 6, 7, 8],
                nan_patience=2,
                max_rollbacks=1,
                stop_prompts=0,
                sample_answers=0,
            )
        )
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert lora_b_norm(tmp_path / "run" / "adapter") > 0  # steps 1-2 were good and are kept
    from assistant.adapters import run_problem

    assert "report says diverged" in run_problem(tmp_path / "run" / "adapter")  # adapter="auto" skips it


def test_freeze_ratio_puts_lora_only_on_the_last_layers(tiny_model, tiny_dataset, tmp_path):
    main(
        tiny_config(
            tiny_model,
            tiny_dataset,
            tmp_path / "run",
            freeze_ratio=0.5,
            max_steps=2,
            stop_prompts=0,
            sample_answers=0,
        )
    )
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors").keys()
    assert keys and all(".layers.1." in k for k in keys)


def test_full_fine_tuning_with_frozen_layers_changes_only_the_unfrozen_ones(
    tiny_model, tiny_dataset, tmp_path
):
    from safetensors.torch import load_file

    main(
        tiny_config(
            tiny_model,
            tiny_dataset,
            tmp_path / "run",
            full=True,
            freeze_ratio=0.5,
            max_steps=2,
            learning_rate=1e-3,
            stop_prompts=0,
            sample_answers=0,
        )
    )
    adapter = tmp_path / "run" / "adapter"
    assert AdapterInfo.load(adapter).full_model
    before, after = load_file(tiny_model / "model.safetensors"), load_file(adapter / "model.safetensors")
    layer0 = [k for k in before if ".layers.0." in k]
    layer1 = [k for k in before if ".layers.1." in k and k.endswith("proj.weight")]
    assert all(torch.equal(before[k], after[k]) for k in layer0)
    assert any(not torch.equal(before[k], after[k]) for k in layer1)


def test_merge_writes_a_full_model_that_matches_base_plus_adapter(tiny_model, tiny_dataset, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    main(
        tiny_config(
            tiny_model,
            tiny_dataset,
            tmp_path / "run",
            merge=True,
            max_steps=2,
            stop_prompts=0,
            sample_answers=0,
        )
    )
    merged_dir = tmp_path / "run" / "merged"
    assert (merged_dir / "model.safetensors").is_file() and AdapterInfo.load(merged_dir).full_model
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    peft = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), tmp_path / "run" / "adapter"
    )
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, peft.eval()(ids).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_real_smollm2_adapter_loads_in_the_chat_generator(settings, tiny_dataset, tmp_path):
    """Two steps on the bundled SmolLM2; the chat's loader applies the adapter with its prompt format."""
    from assistant.chat.generation import Generator

    out = tmp_path / "run"
    cfg = FinetuneConfig.from_preset(
        "smollm2-135m", dataset=tiny_dataset, output_dir=out, home=settings.home, eval_samples=4, max_samples=8,
        max_steps=2, save_steps=2, logging_steps=1, stop_prompts=2, sample_answers=1, max_new_tokens=8,
    )  # fmt: skip
    report = main(cfg)
    assert report["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    generator = Generator.from_settings(settings, adapter=out, device="cpu")
    assert generator.has_adapter and generator.system_prompt == report_system_prompt(out)
    assert generator.tokenizer.convert_tokens_to_ids("<|im_end|>") in generator.stop_token_ids


def report_system_prompt(run: Path) -> str:
    return json.loads((run / "config.json").read_text())["resolved"]["system_prompt"]


def test_unreachable_preset_weights_name_the_embedded_preset(tiny_dataset, tmp_path, monkeypatch):
    from assistant.models import ModelUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = FinetuneConfig.from_preset(
        "llama3.2-1b", dataset=tiny_dataset, output_dir=tmp_path / "run", home=tmp_path
    )
    with pytest.raises(ModelUnavailableError) as err:
        main(cfg)
    assert "meta-llama/Llama-3.2-1B-Instruct" in str(err.value) and "--preset smollm2-135m" in str(err.value)
