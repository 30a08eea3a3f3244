"""A real browser (Debian's headless Chromium driven by Playwright) against `streamlit run` on loopback."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import CHROMIUM, ask_in_browser, free_port, start_streamlit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium missing: `apt-get install chromium` (make test does)",
    ),
]


def test_browser_asks_and_sees_an_answer_with_a_cited_page(ui_home, tmp_path):
    port = free_port()
    proc = start_streamlit(
        ui_home, port, {"LLAMA_MD_MAX_NEW_TOKENS": "48", "LLAMA_MD_SPECIALTY": "pregnancy"}
    )
    try:
        shot = tmp_path / "chat.png"
        text = ask_in_browser(
            f"http://127.0.0.1:{port}",
            "What should I eat during the third trimester?",
            r"nutrition_guide\.pdf, page \d",
            shot,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "What should I eat during the third trimester?" in text
    assert re.search(r"nutrition_guide\.pdf, page 1", text)
    assert shot.stat().st_size > 10_000
    if os.environ.get("LLAMA_MD_SCREENSHOT"):
        shutil.copy(shot, os.environ["LLAMA_MD_SCREENSHOT"])
