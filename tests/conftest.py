"""Shared fixtures: a temporary llama-md home, the real data folder (skip when absent), the bundled models, a
home with a real store and adapter for the chat, and a tiny Llama for fine-tuning. Factories: ``tests/helpers.py``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import PREGNANCY_PAGES, REPO, make_adapter, make_settings, qa_rows, write_jsonl, write_pdf

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The models set-up trains (the medical retriever and re-ranker) live in one cache per machine; a test must not
# depend on whether this machine built them, so the session sees an empty cache (rerank = auto is then off).
# Tests of those models build their own (tests/test_retriever_training.py).
os.environ["LLAMA_MD_MODEL_CACHE"] = tempfile.mkdtemp(prefix="llama-md-models-")


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
    """A home with a real Chroma store built from a small written PDF and an (untrained) LoRA adapter; the PDF lies
    in ``<home>/corpora/pregnancy/``, a curated corpus folder when the home is also the data folder
    (``LLAMA_MD_DATA_DIR=<home>``), so the chat can show its pages."""
    from assistant.rag.ingest import ingest_paths

    home = tmp_path_factory.mktemp("ui-home")
    local = make_settings(home, specialty="pregnancy")
    pdf = write_pdf(home / "corpora" / "pregnancy" / "nutrition_guide.pdf", PREGNANCY_PAGES)
    ingest_paths([pdf], local, specialty="pregnancy")
    make_adapter(local)
    return home


@pytest.fixture(scope="session")
def tiny_model(settings, tmp_path_factory) -> Path:
    """A random tiny Llama saved with the bundled SmolLM2 tokenizer (the recipe of trl's tiny test models)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from assistant.models import load_tokenizer

    tokenizer = load_tokenizer(None, settings)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    """40 short question / answer pairs in ChatDoctor's instruction schema, as a jsonl file."""
    return write_jsonl(tmp_path_factory.mktemp("ft-data") / "qa.jsonl", qa_rows(40))
