"""Kill a real run midway with SIGTERM, resume it, and reach the same final step as an uninterrupted run;
two CPU processes under accelerate (DDP, gloo)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.finetuning.checkpoints import CheckpointWriteError, RunFolderError
from assistant.finetuning.training import main, prepare_run_dir
from tests.helpers import REPO, tiny_config


def finetune_args(tiny_model, tiny_dataset, out: Path, *extra: str) -> list[str]:
    return [
        "--model", str(tiny_model), "--dataset", tiny_dataset, "--output-dir", str(out),
        "--home", str(out.parent / "home"), "--eval-samples", "8", "--max-samples", "32", "--max-steps", "12",
        "--save-steps", "2", "--logging-steps", "1", "--learning-rate", "1e-2", "--stop-prompts", "0",
        "--sample-answers", "0", "--precision", "fp32", *extra,
    ]  # fmt: skip


def test_sigterm_checkpoints_and_resume_reaches_the_uninterrupted_step_count(
    tiny_model, tiny_dataset, tmp_path
):
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune", *finetune_args(tiny_model, tiny_dataset, out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 600
    while (
        not (out / "checkpoints" / "checkpoint-2").is_dir() and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    steps = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert 2 <= steps[-1] < 12, output[-2000:]
    assert not (out / "adapter").exists()  # an interrupted run is not a finished adapter

    resumed = subprocess.run(
        [sys.executable, "-m", "finetune", *finetune_args(tiny_model, tiny_dataset, out, "--resume")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert f"Resuming from {out / 'checkpoints' / f'checkpoint-{steps[-1]}'}" in resumed.stderr

    uninterrupted = main(
        tiny_config(
            tiny_model, tiny_dataset, tmp_path / "whole", max_steps=12, stop_prompts=0, sample_answers=0
        )
    )
    assert report["global_step"] == uninterrupted["global_step"] == 12


def test_resume_skips_an_incomplete_newest_checkpoint_and_reaches_the_same_step(
    tiny_model, tiny_dataset, tmp_path, caplog
):
    out = tmp_path / "run"
    uninterrupted = main(tiny_config(tiny_model, tiny_dataset, out, stop_prompts=0, sample_answers=0))
    checkpoints = out / "checkpoints"
    (checkpoints / "checkpoint-4" / "trainer_state.json").unlink()  # a save killed before its last file
    (checkpoints / "checkpoint-5-old").mkdir()  # a stray folder must not break the sort
    (checkpoints / "checkpoint-5-old" / "note.txt").write_text("kept by hand")

    with caplog.at_level("INFO"):
        resumed = main(
            tiny_config(tiny_model, tiny_dataset, out, stop_prompts=0, sample_answers=0, resume=True)
        )
    assert f"skipping {checkpoints / 'checkpoint-4'}: trainer_state.json is missing" in caplog.text
    assert f"Resuming from {checkpoints / 'checkpoint-2'}" in caplog.text
    assert "checkpoint-5-old is not a checkpoint-<step> folder and is ignored" in caplog.text
    assert resumed["global_step"] == uninterrupted["global_step"] == 4
    assert (checkpoints / "checkpoint-4" / "trainer_state.json").is_file()  # saved again, complete


def _write_incomplete_checkpoints(checkpoints: Path) -> None:
    for step in (2, 4):
        folder = checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        (folder / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # truncated
    (checkpoints / "checkpoint-4" / "adapter_model.safetensors").unlink()


def test_resume_without_a_complete_checkpoint_names_the_folder_and_the_fix(
    tiny_model, tiny_dataset, tmp_path
):
    out = tmp_path / "run"
    _write_incomplete_checkpoints(out / "checkpoints")
    cfg = tiny_config(tiny_model, tiny_dataset, out, resume=True)
    with pytest.raises(RunFolderError) as err:
        prepare_run_dir(cfg)
    text = str(err.value)
    assert str(out / "checkpoints") in text and "--overwrite" in text
    assert (
        "checkpoint-4: no weights file" in text
        and "checkpoint-2: adapter_model.safetensors is truncated" in text
    )
    assert (out / "checkpoints" / "checkpoint-2").is_dir()  # nothing removed without --overwrite

    assert prepare_run_dir(tiny_config(tiny_model, tiny_dataset, out, resume=True, overwrite=True)) is None
    assert out.is_dir() and not (out / "checkpoints").exists()  # started afresh


def test_a_full_disk_during_a_save_names_the_file_and_keeps_the_last_complete_checkpoint(
    tiny_model, tiny_dataset, tmp_path, monkeypatch
):
    from assistant.finetuning.trainer import GuardedSFTTrainer

    save = GuardedSFTTrainer._save_checkpoint

    def save_until_full(self, *args, **kwargs):
        if self.state.global_step >= 4:
            path = str(Path(self.args.output_dir) / "checkpoint-4" / "optimizer.pt")
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(GuardedSFTTrainer, "_save_checkpoint", save_until_full)
    out = tmp_path / "run"
    with pytest.raises(CheckpointWriteError) as err:
        main(tiny_config(tiny_model, tiny_dataset, out, stop_prompts=0, sample_answers=0))
    text = str(err.value)
    assert "checkpoint-4/optimizer.pt" in text and "No space left on device" in text and "--resume" in text
    assert f"{out / 'checkpoints' / 'checkpoint-2'}, is intact" in text


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate(tiny_model, tiny_dataset, tmp_path):
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    args = finetune_args(tiny_model, tiny_dataset, out)
    args[args.index("--max-steps") + 1] = "3"
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "finetune", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["global_step"] == 3 and report["eval_loss_after"] is not None
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
