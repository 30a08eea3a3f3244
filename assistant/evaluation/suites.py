"""The evaluation sets: where each lives under ``<data_dir>/eval``, its source and license, and sample sizes.

Samples are drawn with ``random.Random(seed).sample`` (not the first rows: MIRAGE files are sorted by answer), so
a run is reproducible and every variant sees the same items. ``None`` as a size means the whole set.

    from assistant.evaluation.suites import load_closed, SIZES
    items = load_closed("pubmedqa", data_dir, SIZES["quick"]["pubmedqa"], seed=0)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import LlamaMdError


@dataclass(frozen=True)
class SetInfo:
    """One evaluation set: file under ``<data_dir>``, what it is, where it comes from, its license."""

    name: str
    title: str
    path: str
    source: str
    license: str
    baseline: dict = field(default_factory=dict)  # published reference points, name -> value in [0, 1]


SETS: dict[str, SetInfo] = {
    s.name: s
    for s in (
        SetInfo(
            "chatdoctor",
            "ChatDoctor held-out pairs",
            "datasets/chatdoctor5k.json",
            "GenMedGPT-5k (ChatDoctor, Li et al. 2023); the fine-tune run's held-out split, never trained on",
            "Apache-2.0",
        ),
        SetInfo(
            "kqa",
            "K-QA",
            "eval/kqa/kqa_questions_w_answers.jsonl",
            "K-QA: 201 real patient questions with physician answers and must-have statements "
            "(Manes et al. 2024, arXiv:2401.14493)",
            "MIT",
        ),
        SetInfo(
            "pubmedqa",
            "PubMedQA*",
            "eval/mirage/pubmedqa.jsonl",
            "MIRAGE PubMedQA* (500 expert-annotated PubMedQA test questions without context; Xiong et al. 2024)",
            "MIT",
            {"majority answer (MIRAGE)": 0.552, "PMC-LLaMA-13B, no retrieval (MIRAGE)": 0.558},
        ),
        SetInfo(
            "bioasq",
            "BioASQ-Y/N",
            "eval/mirage/bioasq.jsonl",
            "MIRAGE BioASQ-Y/N (618 yes/no questions, BioASQ Task B 2019-2023, snippets removed)",
            "NCBI public domain (MIRAGE); BioASQ terms of use",
            {"majority answer (MIRAGE)": 0.639, "PMC-LLaMA-13B, no retrieval (MIRAGE)": 0.631},
        ),
        SetInfo(
            "obgyn",
            "OB/GYN MCQs",
            "eval/obgyn/mirage_obgyn_subset.jsonl",
            "319 OB/GYN questions of MIRAGE (95 MedQA-US, 224 MedMCQA), four options each",
            "MIT (MedQA, MedMCQA)",
            {"majority answer, MedQA (MIRAGE)": 0.277, "majority answer, MedMCQA (MIRAGE)": 0.322},
        ),
        SetInfo(
            "pregnancy_questions",
            "Pregnancy questions -> store pages",
            "assistant/evaluation/data/pregnancy_questions.jsonl (in the package)",
            "questions written for this project with the pages of the pregnancy corpus that answer them",
            "project file (corpus: WHO CC BY-NC-SA 3.0 IGO; CDC, NIMH US public domain)",
        ),
        SetInfo(
            "medquad",
            "MedQuAD question -> answer",
            "eval/retrieval/medquad_q2a_sample500.jsonl",
            "500 MedQuAD questions, each to retrieve its own answer among other MedQuAD answers "
            "(Ben Abacha & Demner-Fushman 2019)",
            "CC BY 4.0",
        ),
        SetInfo(
            "red_flags",
            "Red-flag messages",
            "assistant/evaluation/data/triage_test.jsonl + red_flags_test.jsonl + red_flags.jsonl + "
            "red_flags_heldout.jsonl",
            "emergency / urgent / routine messages written for this project; each test set before its classifier "
            "was trained, by a pass that never saw the training messages",
            "project files",
        ),
    )
}

#: Items per set for each suite; None = all. Quick fits 15 minutes for four variants on 2 CPU cores with the
#: bundled 135M model; full runs every item (hours on a CPU, minutes on a GPU).
SIZES: dict[str, dict[str, int | None]] = {
    "quick": {
        "chatdoctor": 5,
        "kqa": 5,
        "pubmedqa": 12,
        "bioasq": 12,
        "obgyn": 12,
        "pregnancy_questions": None,
        "medquad": None,  # the 500 sample questions (0 skips the set)
        "medquad_corpus": 0,  # other MedQuAD answers beside the 500 gold ones (full: all 15,907)
    },
    "full": {name: None for name in SETS} | {"medquad_corpus": None},
}


@dataclass
class OpenItem:
    """A patient question with a reference answer (and K-QA must-have statements)."""

    id: str
    question: str
    reference: str
    must_have: list[str] = field(default_factory=list)


@dataclass
class ClosedItem:
    """A closed question: ``options`` letter -> text, ``answer`` the correct letter."""

    id: str
    question: str
    options: dict[str, str]
    answer: str

    @property
    def yes_no(self) -> bool:
        """True for yes/no(/maybe) questions (PubMedQA*, BioASQ-Y/N)."""
        return {v.lower() for v in self.options.values()} <= {"yes", "no", "maybe"}


class EvalSetError(LlamaMdError, FileNotFoundError):
    """An evaluation set is missing under the data folder."""


def set_path(name: str, data_dir: Path | None) -> Path:
    """Absolute path of set ``name`` under ``data_dir``.

    Raises:
        EvalSetError: ``data_dir`` is unset or the file is absent (names the file and the setting to change).
    """
    info = SETS[name]
    if data_dir is None:
        raise EvalSetError(
            f"No data folder: evaluation set {info.title} lives in <data_dir>/{info.path}. "
            "Set LLAMA_MD_DATA_DIR (e.g. ../shared)."
        )
    path = Path(data_dir) / info.path
    if not path.is_file():
        raise EvalSetError(
            f"{info.title}: {path} does not exist. Expected it under LLAMA_MD_DATA_DIR={data_dir}."
        )
    return path


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file (blank lines skipped)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sample(rows: list, size: int | None, seed: int) -> list:
    """``size`` rows drawn with ``random.Random(seed)`` (all rows, in file order, when size is None or larger)."""
    if size is None or size >= len(rows):
        return list(rows)
    return random.Random(seed).sample(rows, size)


def load_kqa(data_dir: Path | None, size: int | None, seed: int = 0) -> list[OpenItem]:
    """K-QA questions with their physician answer and must-have statements."""
    rows = read_jsonl(set_path("kqa", data_dir))
    items = [
        OpenItem(f"kqa-{i}", r["Question"], r["Free_form_answer"], list(r.get("Must_have") or []))
        for i, r in enumerate(rows)
    ]
    return sample(items, size, seed)


def load_closed(name: str, data_dir: Path | None, size: int | None, seed: int = 0) -> list[ClosedItem]:
    """A MIRAGE-format set (``pubmedqa``, ``bioasq``, ``obgyn``): {id, question, options, answer}."""
    rows = read_jsonl(set_path(name, data_dir))
    items = [
        ClosedItem(
            str(r.get("id") or f"{r.get('mirage_dataset', name)}-{r.get('mirage_id', i)}"),
            r["question"],
            dict(r["options"]),
            r["answer"],
        )
        for i, r in enumerate(rows)
    ]
    return sample(items, size, seed)
