"""A real browser (Debian's headless Chromium driven by Playwright) against `streamlit run` on loopback."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium missing: `apt-get install chromium` (make test does)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(home: Path, port: int, extra_env: dict | None = None) -> subprocess.Popen:
    """`streamlit run ui/app.py` on 127.0.0.1:port; returns once /_stcore/health answers (or raises)."""
    env = {**os.environ, "LLAMA_MD_HOME": str(home), **(extra_env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "ui" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])


def ask_in_browser(url: str, question: str, source_pattern: str, screenshot: Path) -> str:
    """Open the app, ask ``question``, wait for a source expander matching ``source_pattern``; returns page text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, timeout=120_000)
        box = page.get_by_test_id("stChatInputTextArea")
        box.wait_for(timeout=300_000)
        box.fill(question)
        box.press("Enter")
        page.get_by_text(re.compile(source_pattern)).first.wait_for(timeout=300_000)
        page.get_by_test_id("stChatMessage").last.get_by_text(re.compile(source_pattern)).first.click()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(screenshot), full_page=True)
        text = page.inner_text("body")
        browser.close()
    return text


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
