"""The main job the way `make demo` runs it, on a reduced size, ending with a question in a real browser."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from corpora import load_corpus
from tests.helpers import CHROMIUM, REPO, ask_in_browser, free_port, start_streamlit

QUESTION_FOR = {
    "pregnancy": "What should I eat during the third trimester?",
    "mental_health": "What treatments help with depression?",
    "cardiology": "How can I lower my blood pressure?",
    "diabetes": "What should I eat if I have diabetes?",
}


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="Debian chromium missing: `apt-get install chromium`"
)
def test_demo_pipeline_reaches_a_chat_that_cites_the_specialty_corpus(data_dir, tmp_path):
    rows = json.loads((data_dir / "datasets" / "chatdoctor5k.json").read_text())
    subset = tmp_path / "chatdoctor_subset.json"
    subset.write_text(json.dumps(rows[:1500]))
    home = tmp_path / "home"
    env = {**os.environ, "LLAMA_MD_HOME": str(home), "LLAMA_MD_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable,
        "-m",
        "assistant",
        "demo",
        "--no-serve",
        "--dataset",
        str(subset),
        "--train-samples",
        "16",
        "--eval-samples",
        "8",
        "--stop-prompts",
        "1",
        "--sample-answers",
        "1",
        "--max-steps",
        "2",
    ]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("doctor", "topics", "ingest", "fine-tune"):
        assert re.search(rf"== {stage}: \d+\.\d s", run.stdout), stage
    specialty = json.loads((home / "topics" / "topics.json").read_text())["specialty"]
    assert list(home.glob("runs/*/adapter/adapter_model.safetensors"))

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert (
        again.returncode == 0
        and "== topics: reused" in again.stdout
        and "== fine-tune: reused" in again.stdout
    )

    files = "|".join(re.escape(f.file) for f in load_corpus(specialty).files)
    port = free_port()
    proc = start_streamlit(home, port, {"LLAMA_MD_MAX_NEW_TOKENS": "48"})
    try:
        text = ask_in_browser(
            f"http://127.0.0.1:{port}",
            QUESTION_FOR[specialty],
            rf"({files}), page \w+",
            tmp_path / "demo.png",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert QUESTION_FOR[specialty] in text and re.search(rf"({files}), page \w+", text)
