"""One command line: `llama-md` (= `python -m assistant`) with every pipeline step; `python -m ingest` and
`python -m finetune` as aliases; every subcommand module follows the same convention."""

from __future__ import annotations

import importlib
import subprocess
import sys

from assistant.cli import COMMANDS, build_parser
from assistant.cli import main as llama_md
from tests.helpers import REPO

STEPS = (
    "doctor",
    "topics",
    "ingest",
    "finetune",
    "export",
    "search",
    "chat",
    "evaluate",
    "safety",
    "retriever",
    "specialty",
    "demo",
    "ui",
    "serve",
)


def test_every_pipeline_step_is_a_subcommand_with_the_same_three_parts():
    assert tuple(COMMANDS) == STEPS
    for module_name in COMMANDS.values():
        module = importlib.import_module(module_name)
        assert all(callable(getattr(module, part)) for part in ("add_arguments", "config_from_args", "main"))
        assert module.__doc__ and "llama-md" in module.__doc__  # commands a user can paste


def test_the_console_script_points_at_the_parser():
    from assistant.config import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"llama-md": "assistant.cli:main"}
    text = build_parser().format_help()
    assert all(step in text for step in STEPS)


def test_python_m_aliases_reach_the_same_commands():
    for alias, expected in ((["-m", "ingest"], "llama-md ingest"), (["-m", "finetune"], "llama-md finetune")):
        out = subprocess.run(
            [sys.executable, *alias, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0 and expected in out.stdout, out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "finetune", "--list-presets"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "llama3.2-1b" in out.stdout


def test_ui_serves_ui_app(tmp_path):
    from assistant.cli.ui import APP, UiConfig, streamlit_command

    assert APP == REPO / "ui" / "app.py" and APP.is_file()
    command = streamlit_command(UiConfig(port=8600))
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)] and "8600" in command


def test_a_missing_question_is_one_sentence_and_exit_2(capsys):
    assert llama_md(["chat"]) == 2
    assert capsys.readouterr().err.startswith("error: no question given.")
