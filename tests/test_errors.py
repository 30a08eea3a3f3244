"""One error base class, and front-ends that show one plain sentence instead of a type name or a traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import assistant
import corpora
from assistant.cli import run_safely
from assistant.config import ConfigError
from assistant.errors import LlamaMdError


def project_exceptions() -> list[type]:
    modules = [corpora] + [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(assistant.__path__, "assistant.")
        if info.name != "assistant.__main__"
    ]
    return [
        obj
        for module in modules
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == module.__name__
    ]


def test_every_project_error_derives_from_the_base_and_keeps_its_builtin_base():
    found = project_exceptions()
    assert len(found) >= 20
    assert [e.__name__ for e in found if not issubclass(e, LlamaMdError)] == []
    assert issubclass(ConfigError, ValueError)  # existing `except ValueError` still catch it


def test_our_error_is_one_sentence_with_its_exit_code(capsys):
    def command() -> int:
        raise ConfigError("top_k must be > 0, got 0 (--top-k / LLAMA_MD_TOP_K)")

    assert run_safely(command) == 2
    err = capsys.readouterr().err
    assert err == "error: top_k must be > 0, got 0 (--top-k / LLAMA_MD_TOP_K)\n"


def test_an_unexpected_error_is_one_sentence_and_its_traceback_goes_to_the_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLAMA_MD_HOME", str(tmp_path))

    def command() -> int:
        return {}["missing"]

    assert run_safely(command) == 1
    err = capsys.readouterr().err
    assert "Something unexpected went wrong" in err and str(tmp_path / "logs" / "errors.log") in err
    assert "Traceback" not in err and "KeyError" not in err
    log = (tmp_path / "logs" / "errors.log").read_text()
    assert "Traceback" in log and "KeyError: 'missing'" in log
