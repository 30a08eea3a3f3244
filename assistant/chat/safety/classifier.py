"""Stage 2 of the red-flag screen: training data, the train / validation split, the threshold, the model's cache.

The model is the project's embedder fine-tuned with a classification head (:mod:`.finetuned`); it won against a
logistic head on frozen embeddings and against SetFit on the validation split (``benchmarks/safety_heads.py``;
docs/results.md, red-flag triage).

Training data: ``data/messages.jsonl`` (messages written for this project: emergencies per category and routine
look-alikes, each line citing its guidance). The split into train / validation keeps near-identical wordings
together (:func:`split_messages`), so validation measures new wording. The emergency threshold is chosen on the
validation split for recall first: the highest threshold with sensitivity >= 0.98 there, which gives the lowest
false-alarm rate at that sensitivity.

Storage: safetensors and JSON (nothing pickled), in a cache folder named by the fingerprint of the training data,
the embedder and the training settings (:func:`model_dir`): ``python -m assistant safety train`` builds it (``make
setup`` runs it), the first screen of a process builds it when missing, and a changed training file or embedder
gets a new folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.cache import save_atomically  # noqa: F401 - re-exported: screen.py saves with it
from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAINING_FILE = DATA_DIR / "messages.jsonl"
TARGET_SENSITIVITY = 0.98
VALIDATION_SHARE = 0.2
GROUP_SIMILARITY = 0.85  # cosine: messages this close count as one wording and stay on one side of the split


class SafetyDataError(LlamaMdError, ValueError):
    """A message file has a line that is not a valid message; the text names the line and the fix."""


def read_messages(path: Path) -> list[dict]:
    """Read a message file: JSONL with ``text``, ``label`` (emergency | routine) and ``category``.

    Optional fields: ``turns`` (the user's recent turns, the last one equal to ``text``), ``kind``, ``source``.
    The earlier sets' form ``{"text", "emergency": true|false}`` is read too.

    Raises:
        SafetyDataError: the file is missing, or a line is not JSON or lacks a field (line number given).
    """
    if not Path(path).is_file():
        raise SafetyDataError(f"No message file at {path}: give a JSONL file with text, label and category.")
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SafetyDataError(
                f"{path}:{number} is not JSON ({exc.msg}): fix or remove that line."
            ) from exc
        if isinstance(row, dict) and "label" not in row and isinstance(row.get("emergency"), bool):
            row["label"] = "emergency" if row["emergency"] else "routine"
        if (
            not isinstance(row, dict)
            or row.get("label") not in ("emergency", "routine")
            or not row.get("text")
        ):
            raise SafetyDataError(
                f"{path}:{number} needs text and label 'emergency' or 'routine', found {str(row)[:80]!r}."
            )
        rows.append(row)
    return rows


def conversation_text(turns: Sequence[str]) -> str:
    """The text the classifier reads for a conversation: the recent user turns, oldest first, one per line."""
    return "\n".join(t.strip() for t in turns if t and t.strip())


def split_messages(rows: list[dict], embeddings: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split messages into train / validation by category and wording.

    Within each (category, label) group, messages whose embeddings have cosine >= ``GROUP_SIMILARITY`` are joined
    into one wording cluster (connected components); whole clusters go to validation until it holds about
    ``VALIDATION_SHARE`` of the group. So a paraphrase never sits on both sides.

    Args:
        rows: messages as read by :func:`read_messages`.
        embeddings: ``(n, d)`` L2-normalized embeddings of the rows' texts.

    Returns:
        ``(train_idx, val_idx)``: integer index arrays into ``rows``.
    """
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    val: list[int] = []
    keys = sorted({(r.get("category", ""), r["label"]) for r in rows})
    for key in keys:
        idx = np.array([i for i, r in enumerate(rows) if (r.get("category", ""), r["label"]) == key])
        sims = embeddings[idx] @ embeddings[idx].T
        _, cluster = connected_components(sims >= GROUP_SIMILARITY, directed=False)
        order = rng.permutation(cluster.max() + 1)
        want, taken = round(len(idx) * VALIDATION_SHARE), 0
        for c in order:
            if taken >= want:
                break
            members = idx[cluster == c]
            val.extend(members.tolist())
            taken += len(members)
    val_idx = np.array(sorted(val), dtype=int)
    train_idx = np.setdiff1d(np.arange(len(rows)), val_idx)
    return train_idx, val_idx


def pick_threshold(p: np.ndarray, y: np.ndarray, target: float = TARGET_SENSITIVITY) -> float:
    """Highest threshold whose sensitivity on ``(p, y)`` is >= ``target`` (recall first, then fewest alarms).

    Args:
        p: ``(n,)`` emergency probabilities; y: ``(n,)`` 1 for emergency, 0 for routine.
    """
    positives = np.sort(p[y == 1])
    if len(positives) == 0:
        return 0.5
    allowed_misses = int(np.floor((1 - target) * len(positives)))
    return float(positives[allowed_misses])


def fingerprint(path: Path, embedder_name: str) -> str:
    """sha256 over the training file, the embedder's name and the training settings (16 hex digits)."""
    from . import finetuned

    h = hashlib.sha256(Path(path).read_bytes())
    settings = (finetuned.EPOCHS, finetuned.BATCH_SIZE, finetuned.LR_BODY, finetuned.LR_HEAD, finetuned.SCALE,
                finetuned.MAX_SEQ_LENGTH, TARGET_SENSITIVITY, VALIDATION_SHARE, GROUP_SIMILARITY)  # fmt: skip
    h.update(f"{Path(embedder_name).name}|{settings}".encode())
    return h.hexdigest()[:16]


def model_dir(embedder_name: str, path: Path = TRAINING_FILE) -> Path:
    """Cache folder of the classifier for this training file and embedder.

    ``$LLAMA_MD_SAFETY_CACHE`` or ``$XDG_CACHE_HOME/llama-md/safety`` (default ``~/.cache/llama-md/safety``), then
    the :func:`fingerprint`. Shared by every llama-md home on the machine: the model depends on nothing else.
    """
    root = (
        os.environ.get("LLAMA_MD_SAFETY_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-md" / "safety"
    )
    return Path(root) / fingerprint(path, embedder_name)


def train(embed, embedder_dir: str, path: Path = TRAINING_FILE, seed: int = 0, epochs: int | None = None):
    """Train the classifier on a message file, pick its threshold on the validation split, and report.

    Args:
        embed: ``callable(list[str]) -> (n, d)`` L2-normalized embeddings of the base embedder (for the split).
        embedder_dir: the base embedder (local folder or hub id) that is fine-tuned.
        path: training messages (:func:`read_messages`).
        epochs: fine-tuning epochs (default :data:`.finetuned.EPOCHS`).

    Returns:
        ``(classifier, report)``: a :class:`.finetuned.FinetunedClassifier` trained on the train split, with the
        threshold for sensitivity >= ``TARGET_SENSITIVITY`` on validation; the report has split sizes, the
        threshold, validation sensitivity, false-alarm rate, AUC, category accuracy and seconds.
    """
    from sklearn.metrics import roc_auc_score

    from .finetuned import EPOCHS, ROUTINE, train_finetuned

    t0 = time.perf_counter()
    rows = read_messages(path)
    texts = [conversation_text(r.get("turns") or [r["text"]]) for r in rows]
    labels = [r["category"] if r["label"] == "emergency" else ROUTINE for r in rows]
    train_idx, val_idx = split_messages(rows, np.asarray(embed(texts)), seed)
    clf = train_finetuned(
        embedder_dir, [texts[i] for i in train_idx], [labels[i] for i in train_idx], epochs=epochs or EPOCHS,
        seed=seed,
    )  # fmt: skip
    p, cats = clf.predict_texts([texts[i] for i in val_idx])
    y = np.array([labels[i] != ROUTINE for i in val_idx], dtype=int)
    clf.threshold = pick_threshold(p, y)
    emergencies = [(c, labels[i]) for c, i, e in zip(cats, val_idx, y, strict=True) if e]
    report = {
        "train": int(len(train_idx)),
        "validation": int(len(val_idx)),
        "threshold": round(clf.threshold, 4),
        "val_sensitivity": float(np.mean(p[y == 1] >= clf.threshold)),
        "val_false_alarm_rate": float(np.mean(p[y == 0] >= clf.threshold)),
        "val_auc": float(roc_auc_score(y, p)),
        "val_category_accuracy": float(np.mean([c == t for c, t in emergencies])),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    clf.meta = {"embedder": Path(embedder_dir).name, "training_file": Path(path).name, **report}
    logger.info("red-flag classifier trained: %s", report)
    return clf, report
