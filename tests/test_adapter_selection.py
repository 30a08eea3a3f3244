"""adapter="auto" serves the newest run that completed and passed its checks; unusable runs are skipped with a
notice naming them, and the chat falls back to the previous good adapter or the base model."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from assistant.adapters import INFO_FILE, select_adapter
from tests.helpers import make_adapter, make_settings


def _copy_run(good: Path, name: str, age_s: float) -> Path:
    """A copy of the run of ``good`` (an adapter/ folder) named ``name``, ``age_s`` seconds newer than it."""
    run = good.parent.parent / name
    shutil.copytree(good.parent, run)
    stamp = time.time() + age_s
    os.utime(run / "adapter" / INFO_FILE, (stamp, stamp))
    return run


def test_auto_skips_diverged_truncated_and_foreign_runs_and_serves_the_previous_good_one(tmp_path):
    from assistant.chat.answer import Assistant

    settings = make_settings(tmp_path / "home")
    good = make_adapter(settings, "run-1-good")
    diverged = _copy_run(good, "run-2-diverged", 10)
    (diverged / "report.json").write_text(
        json.dumps({"status": "diverged", "stop_reason": "NaN after rollbacks"})
    )
    truncated = _copy_run(good, "run-3-truncated", 20)
    weights = truncated / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    foreign = _copy_run(good, "run-4-llama", 30)
    info = json.loads((foreign / "adapter" / INFO_FILE).read_text())
    info["base_model"] = "meta-llama/Llama-3.2-1B-Instruct"  # the README's --preset llama3.2-1b
    (foreign / "adapter" / INFO_FILE).write_text(json.dumps(info))
    os.utime(foreign / "adapter" / INFO_FILE, (time.time() + 30,) * 2)

    bot = Assistant.from_settings(settings, "auto", use_rag=False)
    assert bot.generator.adapter_dir == good and bot.generator.has_adapter
    notices = bot.generator.notices
    assert len(notices) == 3
    assert "run-4-llama" in notices[0] and "meta-llama/Llama-3.2-1B-Instruct" in notices[0]
    assert "run-3-truncated" in notices[1] and "adapter_model.safetensors is truncated" in notices[1]
    assert "run-2-diverged" in notices[2] and "diverged: NaN after rollbacks" in notices[2]
    assert set(notices) <= set(bot.describe().hints)  # the UI shows them (st.info), the CLI logs them
    answer = bot.generator.stream([{"role": "user", "content": "Is a mild fever normal?"}], max_new_tokens=4)
    assert answer.text()  # the chat answers through the previous good adapter


def test_auto_serves_the_base_model_when_no_run_passes_its_checks(tmp_path):
    from assistant.chat.generation import Generator

    settings = make_settings(tmp_path / "home")
    good = make_adapter(settings, "run-1")
    report = {"status": "completed", "eval_loss_after": float("nan"), "stop_rate_before": 0.5}
    (good.parent / "report.json").write_text(json.dumps(report))  # json writes NaN, as the trainer would
    worse = _copy_run(good, "run-2", 10)
    (worse / "report.json").write_text(
        json.dumps({"status": "completed", "stop_rate_before": 0.5, "stop_rate_after": 0.25})
    )
    unfinished = _copy_run(good, "run-3", 20)
    (unfinished / "report.json").unlink()

    choice = select_adapter(settings.runs_dir, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert choice.adapter_dir is None and len(choice.notices) == 3
    assert "did not finish" in choice.notices[0] and "stop rate fell" in choice.notices[1]
    assert "not finite" in choice.notices[2]
    generator = Generator.from_settings(settings, "auto", device="cpu")
    assert generator.adapter_dir is None and not generator.has_adapter and len(generator.notices) == 3
