"""Patient-question datasets: loading any common format and detecting the schema.

Known schemas (``SCHEMAS``):

* ``instruction``: {instruction, input, output} — ChatDoctor / GenMedGPT-5k (Apache-2.0,
  https://github.com/Kent0n-Li/ChatDoctor); ``input`` is the patient, ``output`` the doctor.
* ``chatbot``: {Description, Patient, Doctor} — AI Medical Chatbot (hub: ``ruslanmv/ai-medical-chatbot``).
* ``qa``: {question, answer} — MedQuAD (Ben Abacha & Demner-Fushman 2019) and similar.
* ``prompt``: {prompt[, completion]} — already formatted text.
* ``messages``: chat {messages: [{role, content}, ...]}.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import LlamaMdError

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

#: schema name -> (question column, answer column or None, system/instruction column or None)
SCHEMAS: dict[str, tuple[str, str | None, str | None]] = {
    "instruction": ("input", "output", "instruction"),
    "chatbot": ("Patient", "Doctor", None),
    "qa": ("question", "answer", None),
    "prompt": ("prompt", "completion", None),
    "messages": ("messages", None, None),
}
LOCAL_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}


class DatasetError(LlamaMdError, ValueError):
    """The dataset can't be read or has no known schema; the message lists what was found and how to fix it."""


@dataclass
class Pair:
    """One training/evaluation example: a patient question and the doctor's answer (answer may be '')."""

    question: str
    answer: str
    system: str = ""


@dataclass
class Texts:
    """Questions pulled out of a dataset, with what was skipped and why."""

    texts: list[str]
    column: str
    skipped: dict[str, int] = field(default_factory=dict)


def load_table(source: str | Path, split: str = "train") -> Dataset:
    """Load a local json / jsonl / csv / parquet / arrow file, a ``save_to_disk`` folder, or a hub dataset id.

    Raises:
        DatasetError: the file does not exist, its format is unknown, or the hub id can't be fetched.
    """
    import datasets

    path = Path(source)
    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        if path.suffix.lower() in LOCAL_SUFFIXES:
            if not path.is_file():
                raise DatasetError(
                    f"Dataset file {path} does not exist. Fix: check the path (or LLAMA_MD_DATA_DIR)."
                )
            return datasets.load_dataset(
                LOCAL_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train"
            )
        if path.suffix or "/" not in str(source):
            raise DatasetError(
                f"{source!r} is neither an existing file with a known suffix ({', '.join(LOCAL_SUFFIXES)}), "
                "a saved dataset folder, nor a hub id like 'ruslanmv/ai-medical-chatbot'."
            )
        return datasets.load_dataset(str(source), split=split)
    except DatasetError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable data / no network
        if path.is_file() and (path.stat().st_size == 0 or "corresponds to no data" in str(exc)):  # no rows
            raise DatasetError(
                f"Dataset file {path} is empty (0 rows). Fix: give a file with questions."
            ) from exc
        raise DatasetError(
            f"Could not load dataset {str(source)!r}: {type(exc).__name__}: {exc}. Fix: for a hub id you must be "
            "online (or have it cached); for a file check that it is valid json/jsonl/csv/parquet."
        ) from exc


def detect_schema(columns: list[str]) -> str:
    """Name of the first known schema whose question column is present.

    Raises:
        DatasetError: none matches; lists the columns found and the schemas known.
    """
    for name, (question, answer, _) in SCHEMAS.items():
        if question in columns and (answer is None or answer in columns or name in ("prompt", "chatbot")):
            return name
    known = "; ".join(f"{n}: {{{', '.join(c for c in cols if c)}}}" for n, cols in SCHEMAS.items())
    raise DatasetError(
        f"Unknown dataset schema: columns found {sorted(columns)}. Known schemas: {known}. "
        "Fix: rename the columns, or pass --text-column for the question column."
    )


def _user_turns(messages: list[dict]) -> str:
    return "\n".join(m.get("content", "") for m in messages or [] if m.get("role") == "user")


def question_texts(dataset: Dataset, column: str | None = None) -> Texts:
    """The patient questions of a dataset: ``column`` if given, else the schema's question column.

    Non-string and empty values are skipped and counted (``skipped``: {"empty": n, "non_text": m}).

    Raises:
        DatasetError: ``column`` is not in the dataset (the columns found are listed) or no schema matches.
    """
    columns = list(dataset.column_names)
    if column is not None and column not in columns:
        raise DatasetError(
            f"Column {column!r} not found; the dataset has {columns}. Fix: --text-column one of them."
        )
    column = column or SCHEMAS[detect_schema(columns)][0]
    texts, skipped = [], {"empty": 0, "non_text": 0}
    for value in dataset[column]:
        if column == "messages" and isinstance(value, list):
            value = _user_turns(value)
        if not isinstance(value, str):
            skipped["non_text"] += 1
        elif not value.strip():
            skipped["empty"] += 1
        else:
            texts.append(value.strip())
    return Texts(texts, column, {k: v for k, v in skipped.items() if v})


def to_pairs(dataset: Dataset) -> tuple[list[Pair], str]:
    """Convert every row to a :class:`Pair` using the detected schema; returns ``(pairs, schema)``.

    Rows whose question or answer is missing / empty become pairs with empty strings; callers drop and count them.
    For ``messages`` the last user turn is the question and the following assistant turn the answer; a ``system``
    turn becomes ``system``. For ``chatbot`` the ``Description`` is prepended to the patient text when present.
    """
    schema = detect_schema(list(dataset.column_names))
    q_col, a_col, s_col = SCHEMAS[schema]
    pairs = []
    for row in dataset:
        if schema == "messages":
            msgs = row["messages"] or []
            system = next((m["content"] for m in msgs if m.get("role") == "system"), "")
            users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
            q = msgs[users[-1]]["content"] if users else ""
            a = (
                next((m["content"] for m in msgs[users[-1] + 1 :] if m.get("role") == "assistant"), "")
                if users
                else ""
            )
            pairs.append(Pair(_text(q), _text(a), _text(system)))
            continue
        q = _text(row.get(q_col))
        if schema == "chatbot" and _text(row.get("Description")):
            q = f"{_text(row.get('Description'))}\n{q}".strip()
        a = _text(row.get(a_col)) if a_col else ""
        pairs.append(Pair(q, a, _text(row.get(s_col)) if s_col else ""))
    return pairs, schema


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def medquad_key(row: dict) -> str:
    """medquad.jsonl row -> its evaluation qid ``<collection no.>_<id>`` (ids repeat across collections).

    The MedQuAD retrieval sample names its gold answers ``MQ_<qid>``; the RAG data builder drops those rows.
    """
    return f"{row['collection'].split('_', 1)[0]}_{row['id']}"
