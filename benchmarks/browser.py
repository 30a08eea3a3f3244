"""A real browser against `streamlit run ui/app.py` on loopback: the launcher the browser tests and
benchmarks/chat_load.py share (Debian's Chromium driven by Playwright; Playwright's own browser download can't work
offline)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(
    home: Path,
    port: int,
    extra_env: dict | None = None,
    args: list[str] | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen:
    """`streamlit run ui/app.py` on 127.0.0.1:port (+ ``args``, e.g. ``["--secrets.files", path]``); returns once
    /_stcore/health answers (or raises). The server's output goes to ``log_path`` when given (else a pipe)."""
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
            *(args or []),
        ],
        cwd=REPO,
        env=env,
        stdout=log_path.open("ab") if log_path else subprocess.PIPE,
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
    output = proc.stdout.read() if proc.stdout else log_path.read_bytes()
    raise RuntimeError("streamlit did not start: " + output.decode(errors="replace")[-2000:])
