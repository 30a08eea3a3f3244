"""Shared fixtures: a temporary llama-md home, the real data folder (skip when absent), the bundled models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path | None:
    raw = os.environ.get("LLAMA_MD_DATA_DIR") or str(REPO.parent / "shared")
    path = Path(raw)
    return path if (path / "corpora").is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (../shared or $LLAMA_MD_DATA_DIR); tests using it skip when it is absent."""
    path = _data_dir()
    if path is None:
        pytest.skip("real data absent: set LLAMA_MD_DATA_DIR or place ../shared beside the repo")
    return path


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """One llama-md home per test session (the converted generator is cached here once)."""
    return tmp_path_factory.mktemp("llama-md-home")


@pytest.fixture(scope="session")
def settings(home):
    from assistant.config import load_settings

    return load_settings(
        {"home": str(home), "data_dir": str(_data_dir()) if _data_dir() else None}, environ={}
    )


@pytest.fixture(scope="session")
def generator(settings):
    """The bundled SmolLM2-135M-Instruct, loaded once through the project's loader: (model, tokenizer)."""
    from assistant.models import load_generator

    return load_generator(None, settings, device="cpu")


@pytest.fixture(scope="session")
def embedder(settings):
    from assistant.models import load_embedder

    return load_embedder(None, settings, device="cpu")


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory, settings):
    """A home with a real Chroma store built from a small written PDF and an (untrained) LoRA adapter."""
    from assistant.config import load_settings
    from assistant.rag.ingest import ingest_paths
    from tests.helpers import PREGNANCY_PAGES, make_adapter, write_pdf

    home = tmp_path_factory.mktemp("ui-home")
    local = load_settings({"home": str(home), "specialty": "pregnancy"}, environ={})
    pdf = write_pdf(home / "pdfs" / "nutrition_guide.pdf", PREGNANCY_PAGES)
    ingest_paths([pdf], local, specialty="pregnancy")
    make_adapter(local)
    return home
