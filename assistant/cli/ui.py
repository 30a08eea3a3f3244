"""Serve the chat: `streamlit run ui/app.py` on http://localhost:8501.

    llama-md ui                    # the same as: streamlit run ui/app.py
    llama-md ui --port 8600

The app loads the newest fine-tuned adapter and the store under $LLAMA_MD_HOME, and says which command builds
what is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

#: ui/app.py beside the assistant package (in a checkout, and in site-packages for an installed copy).
APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"


@dataclass
class UiConfig:
    port: int = 8501
    headless: bool = True  # don't try to open a browser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=UiConfig.port, help="port (default 8501)")


def config_from_args(args: argparse.Namespace) -> UiConfig:
    return UiConfig(port=args.port)


def streamlit_command(cfg: UiConfig) -> list[str]:
    """The ``python -m streamlit run ui/app.py ...`` command line for ``cfg``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(cfg.port),
        "--server.headless",
        str(cfg.headless).lower(),
        "--browser.gatherUsageStats",
        "false",
    ]


def main(cfg: UiConfig) -> int:
    """Replace this process with the Streamlit server (returns only if that fails to start)."""
    print(f"Chat: http://localhost:{cfg.port}  (Ctrl+C to stop)", flush=True)
    command = streamlit_command(cfg)
    os.execv(command[0], command)
    return 1
