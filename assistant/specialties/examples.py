"""Labelled text for the specialty router: what exists, read into one form, and split without leaks.

Three sources (:class:`Example` each):

* ``patient``: patient-style questions written for this project, one class per line and an ``accept`` set
  (``data/patient_questions.jsonl``, ``{question, specialty, accept}``). The target domain: the router is
  calibrated and its "unsure" threshold chosen on these.
* ``medquad``: MedQuAD questions labelled by their publishing institute
  (``$LLAMA_MD_DATA_DIR/specialties/medquad_source_specialty.csv``; CC BY 4.0, Ben Abacha & Demner-Fushman 2019).
  Templated ("What are the symptoms of X ?") and dominated by drugs and genetic diseases, so at most
  ``MEDQUAD_PER_CLASS`` rows per class are sampled.
* ``mtsamples``: MTSamples transcription descriptions labelled by category
  (``.../specialties/mtsamples_specialty.csv``; CC0); rows without a class (document types) are skipped.

Both silver sets are optional: without a data folder the router trains on the patient questions alone.

Splits never cut a group: MedQuAD by question focus (every question about one disease on one side), MTSamples by
sample name without its " - 2" suffix, patient questions by wording (near-paraphrases together,
:func:`split_patient`). Silver groups go to train / validation / test by a hash
of the group (:func:`silver_split`), so ``llama-md specialty eval`` finds the same test slice without a stored list.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import LlamaMdError

from .taxonomy import load_taxonomy

DATA_DIR = Path(__file__).resolve().parent / "data"
PATIENT_FILE = DATA_DIR / "patient_questions.jsonl"
MEDQUAD_FILE = "specialties/medquad_source_specialty.csv"  # under the data folder
MTSAMPLES_FILE = "specialties/mtsamples_specialty.csv"
MEDQUAD_PER_CLASS = 150  # rows sampled per class from each split (medications alone has 13,681)
MTSAMPLES_PER_CLASS = 150  # surgery has 1,103
SILVER_SHARES = {"test": 15, "validation": 15}  # percent of groups; the rest train
VALIDATION_SHARE = 0.2  # of each class's patient questions
WORDING_SIMILARITY = 0.85  # cosine: patient questions this close count as one wording (as the red-flag split)


class ExampleDataError(LlamaMdError, ValueError):
    """A labelled file has a bad line (not JSON, no text, an unknown class); the message names line and fix."""


@dataclass(frozen=True)
class Example:
    """One labelled text. ``accept``: the classes that count as right, the primary one first."""

    text: str
    accept: tuple[str, ...]
    source: str  # patient | medquad | mtsamples
    group: str  # kept on one side of every split (focus, sample name, the text itself)

    @property
    def label(self) -> str:
        return self.accept[0]


def read_questions(path: Path, source: str = "patient") -> list[Example]:
    """Read a question file: JSONL with ``question``, ``specialty`` and optional ``accept`` (a list of slugs).

    Raises:
        ExampleDataError: the file is missing, or a line is not JSON, lacks a field or names an unknown class.
    """
    if not Path(path).is_file():
        raise ExampleDataError(
            f"No question file at {path}: give JSONL lines {{question, specialty, accept}}."
        )
    known, rows = load_taxonomy(), []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExampleDataError(
                f"{path}:{number} is not JSON ({exc.msg}): fix or remove that line."
            ) from exc
        accept = [row.get("specialty")] + [a for a in row.get("accept") or [] if a != row.get("specialty")]
        if not str(row.get("question") or "").strip() or any(a not in known for a in accept):
            raise ExampleDataError(
                f"{path}:{number} needs a question and classes of assistant/specialties/taxonomy.toml, found "
                f"{line[:100]!r}."
            )
        rows.append(Example(row["question"].strip(), tuple(accept), source, row["question"].strip()))
    return rows


def _accept(cell: str) -> tuple[str, ...]:
    known = load_taxonomy()
    return tuple(a for a in (cell or "").split("|") if a in known)


def read_medquad(path: Path) -> list[Example]:
    """Every MedQuAD question with a class (``accept`` from its institute); group = its focus, lower-cased."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            Example(r["question"].strip(), _accept(r["accept"]), "medquad", r["focus"].strip().lower())
            for r in csv.DictReader(fh)
            if r["question"].strip() and _accept(r["accept"])
        ]


def read_mtsamples(path: Path) -> list[Example]:
    """Every MTSamples description with a class; group = sample name without a trailing " - N"."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            Example(
                r["description"].strip(),
                _accept(r["accept"]),
                "mtsamples",
                re.sub(r"\s*-\s*\d+\s*$", "", r["sample_name"]).strip().lower(),
            )
            for r in csv.DictReader(fh)
            if r["description"].strip() and _accept(r["accept"])
        ]


def silver_split(group: str) -> str:
    """ "train", "validation" or "test" for a silver group: its sha256 mod 100 against :data:`SILVER_SHARES`."""
    bucket = int(hashlib.sha256(group.encode()).hexdigest(), 16) % 100
    if bucket < SILVER_SHARES["test"]:
        return "test"
    return "validation" if bucket < SILVER_SHARES["test"] + SILVER_SHARES["validation"] else "train"


def sample_per_class(rows: list[Example], per_class: int, seed: int = 0) -> list[Example]:
    """At most ``per_class`` rows of each primary class (a seeded random sample; order: by class, then text)."""
    by_class: dict[str, list[Example]] = {}
    for row in dict.fromkeys(rows):  # drop exact duplicates
        by_class.setdefault(row.label, []).append(row)
    rng, kept = random.Random(seed), []
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda r: r.text)
        kept += sorted(rng.sample(members, min(per_class, len(members))), key=lambda r: r.text)
    return kept


def silver_slice(data_dir: Path | None, split: str, seed: int = 0) -> dict[str, list[Example]]:
    """The ``split`` ("train" | "validation" | "test") of each silver set found under ``data_dir``.

    Returns:
        ``{"medquad": [...], "mtsamples": [...]}`` with the sets that exist (empty dict without a data folder);
        each sampled to at most its per-class cap.
    """
    found: dict[str, list[Example]] = {}
    for name, rel, reader, cap in (
        ("medquad", MEDQUAD_FILE, read_medquad, MEDQUAD_PER_CLASS),
        ("mtsamples", MTSAMPLES_FILE, read_mtsamples, MTSAMPLES_PER_CLASS),
    ):
        path = Path(data_dir) / rel if data_dir else None
        if path is not None and path.is_file():
            rows = [r for r in reader(path) if silver_split(r.group) == split]
            found[name] = sample_per_class(rows, cap, seed)
    return found


def split_patient(rows: list[Example], embeddings: np.ndarray, seed: int = 0) -> tuple[list[int], list[int]]:
    """Train / validation indices of patient questions: per class, near-paraphrases on one side.

    As the red-flag split does (:func:`assistant.chat.safety.classifier.split_messages`): within a class,
    questions with cosine >= ``WORDING_SIMILARITY`` are joined into wording clusters (connected components), and
    whole clusters, in a seeded random order, go to validation until it holds ``VALIDATION_SHARE`` of the class.

    Args:
        embeddings: ``(n, d)`` L2-normalized embeddings of the rows' texts.
    """
    from scipy.sparse.csgraph import connected_components

    rng, val = np.random.default_rng(seed), []
    for label in sorted({r.label for r in rows}):
        idx = np.array([i for i, r in enumerate(rows) if r.label == label])
        sims = embeddings[idx] @ embeddings[idx].T
        _, cluster = connected_components(sims >= WORDING_SIMILARITY, directed=False)
        want, taken = round(len(idx) * VALIDATION_SHARE), 0
        for c in rng.permutation(cluster.max() + 1):
            if taken >= want:
                break
            members = idx[cluster == c]
            val += members.tolist()
            taken += len(members)
    held = set(val)
    return [i for i in range(len(rows)) if i not in held], sorted(val)


def source_files(data_dir: Path | None, patient_file: Path = PATIENT_FILE) -> list[Path]:
    """The training files that exist: the patient questions, then MedQuAD's and MTSamples' CSVs if found."""
    silver = [Path(data_dir) / rel for rel in (MEDQUAD_FILE, MTSAMPLES_FILE)] if data_dir else []
    return [Path(patient_file)] + [p for p in silver if p.is_file()]
