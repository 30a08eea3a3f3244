"""Stage 2 of the triage screen: training data, the train / validation split, the thresholds, the model's cache.

The model is the project's embedder fine-tuned with a classification head (:mod:`.finetuned`); it won against a
logistic head on frozen embeddings and against SetFit on the validation split (``benchmarks/safety_heads.py``;
docs/results.md, red-flag triage).

Training data: ``data/messages.jsonl`` (messages written for this project: emergencies and urgent messages per
category, routine look-alikes by family, each line citing its guidance). The split into train / validation keeps
near-identical wordings together (:func:`split_messages`), so validation measures new wording; long messages
composed from the training split are added to it (:func:`composed_messages`). The two thresholds
are chosen on the validation split, scored the way the screen reads a message (whole and, when long, sentence by
sentence: :func:`.segments.texts_to_read`): the emergency threshold is the highest with sensitivity >=
:data:`TARGET_SENSITIVITY` for emergency messages; the urgent one (on emergency + urgent mass) the highest with
sensitivity >= :data:`TARGET_ALARM_SENSITIVITY` for emergency and urgent messages, so the band below the emergency
threshold gets the amber notice instead of the red one (:func:`pick_thresholds`).

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
TARGET_SENSITIVITY = 0.98  # emergency messages given the emergency level, on validation
TARGET_ALARM_SENSITIVITY = 0.99  # emergency and urgent messages given either level, on validation
LABELS = ("emergency", "urgent", "routine")
COMPOSED_MESSAGES = 150  # long routine, and long with one buried sign, composed per training run
VALIDATION_SHARE = 0.2
GROUP_SIMILARITY = 0.85  # cosine: messages this close count as one wording and stay on one side of the split


class SafetyDataError(LlamaMdError, ValueError):
    """A message file has a line that is not a valid message; the text names the line and the fix."""


def read_messages(path: Path) -> list[dict]:
    """Read a message file: JSONL with ``text``, ``label`` (emergency | urgent | routine) and ``category``.

    Optional fields: ``turns`` (the user's recent turns, the last one equal to ``text``), ``kind``, ``source``.
    ``urgency`` is read as ``label`` (the graded test set's name for it), and the earlier sets' form
    ``{"text", "emergency": true|false}`` too.

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
        if isinstance(row, dict) and "label" not in row and "urgency" in row:
            row["label"] = row["urgency"]
        if isinstance(row, dict) and "label" not in row and isinstance(row.get("emergency"), bool):
            row["label"] = "emergency" if row["emergency"] else "routine"
        if not isinstance(row, dict) or row.get("label") not in LABELS or not row.get("text"):
            raise SafetyDataError(
                f"{path}:{number} needs text and label 'emergency', 'urgent' or 'routine', found {str(row)[:80]!r}."
            )
        rows.append(row)
    return rows


def check_categories(rows: list[dict], path: Path) -> None:
    """Every emergency or urgent message names a category of its level (:data:`.categories.CATEGORIES`).

    Raises:
        SafetyDataError: listing up to 5 offending messages and the valid ids.
    """
    from .categories import CATEGORIES

    bad = [
        (i, r.get("category"), r["label"])
        for i, r in enumerate(rows)
        if r["label"] != "routine"
        and (r.get("category") not in CATEGORIES or CATEGORIES[r["category"]].level != r["label"])
    ]
    if bad:
        shown = "; ".join(f"message {i}: {c!r} labelled {lab}" for i, c, lab in bad[:5])
        raise SafetyDataError(
            f"{path}: {len(bad)} messages name no category of their level ({shown}). Use an id of that level "
            f"from assistant/chat/safety/categories.py: {', '.join(CATEGORIES)}."
        )


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
        p: ``(n,)`` probabilities; y: ``(n,)`` 1 for a positive, 0 otherwise.
    """
    positives = np.sort(p[y == 1])
    if len(positives) == 0:
        return 0.5
    allowed_misses = int(np.floor((1 - target) * len(positives)))
    return float(positives[allowed_misses])


def pick_thresholds(p_emergency: np.ndarray, p_alarm: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """The emergency and urgent thresholds (see the module docstring).

    Args:
        p_emergency: ``(n,)`` emergency mass per message; p_alarm: ``(n,)`` emergency + urgent mass;
        labels: ``n`` labels (emergency | urgent | routine).

    Returns:
        ``{"emergency": t_e, "urgent": t_u}`` with ``t_u <= t_e``.
    """
    labels = np.asarray(labels)
    t_e = pick_threshold(p_emergency, (labels == "emergency").astype(int), TARGET_SENSITIVITY)
    t_u = pick_threshold(p_alarm, (labels != "routine").astype(int), TARGET_ALARM_SENSITIVITY)
    return {"emergency": t_e, "urgent": min(t_u, t_e)}


def levels_from(p_emergency: np.ndarray, p_alarm: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """``(n,)`` levels: emergency at ``p_emergency >= t_e``, else urgent at ``p_alarm >= t_u``, else routine."""
    return np.where(
        p_emergency >= thresholds["emergency"],
        "emergency",
        np.where(p_alarm >= thresholds["urgent"], "urgent", "routine"),
    )


def level_figures(levels: Sequence[str], truth: Sequence[str]) -> dict:
    """Sensitivity, false alarms and the 3x3 confusion table of predicted ``levels`` against ``truth``.

    Returns:
        ``emergency_sensitivity`` (emergency messages given emergency), ``alarm_sensitivity`` (emergency or urgent
        messages given either), ``emergency_alarm_sensitivity`` (emergency messages given either),
        ``routine_emergency_rate`` (routine messages given emergency), ``routine_banner_rate`` (routine messages
        given either), ``urgent_to_emergency_rate``, and ``confusion`` ``{true: {predicted: count}}``; a rate is
        NaN where its group is empty.
    """
    levels, truth = np.asarray(levels), np.asarray(truth)

    def rate(mask, hit):
        return float(np.mean(hit[mask])) if mask.any() else float("nan")

    em, ur, rt = truth == "emergency", truth == "urgent", truth == "routine"
    banner = levels != "routine"
    return {
        "emergency_sensitivity": rate(em, levels == "emergency"),
        "alarm_sensitivity": rate(em | ur, banner),
        "emergency_alarm_sensitivity": rate(em, banner),
        "routine_emergency_rate": rate(rt, levels == "emergency"),
        "routine_banner_rate": rate(rt, banner),
        "urgent_to_emergency_rate": rate(ur, levels == "emergency"),
        "confusion": {t: {p: int(np.sum((truth == t) & (levels == p))) for p in LABELS} for t in LABELS},
    }


def screen_probabilities(clf, conversations: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's part of the screen over many conversations: per conversation, the max emergency and alarm
    mass over the texts the screen reads (:func:`.segments.texts_to_read`), all texts in one call.

    Returns:
        ``(p_emergency, p_alarm)``, each ``(n,)``.
    """
    from .segments import texts_to_read

    plans = [texts_to_read(turns) for turns in conversations]
    pred = clf.predict([t for plan in plans for t in plan.texts])
    p_e, p_a, at = np.zeros(len(plans)), np.zeros(len(plans)), 0
    for i, plan in enumerate(plans):
        n = len(plan.texts)
        p_e[i], p_a[i] = pred.p_emergency[at : at + n].max(), pred.p_alarm[at : at + n].max()
        at += n
    return p_e, p_a


def fingerprint(path: Path, embedder_name: str) -> str:
    """sha256 over the training file, the embedder's name and the training settings (16 hex digits)."""
    from . import finetuned, segments

    h = hashlib.sha256(Path(path).read_bytes())
    settings = (finetuned.EPOCHS, finetuned.BATCH_SIZE, finetuned.LR_BODY, finetuned.LR_HEAD, finetuned.SCALE,
                finetuned.MAX_SEQ_LENGTH, TARGET_SENSITIVITY, TARGET_ALARM_SENSITIVITY, VALIDATION_SHARE,
                GROUP_SIMILARITY, COMPOSED_MESSAGES, segments.LONG_MESSAGE_CHARS, segments.LONG_SENTENCE_CHARS)  # fmt: skip
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


def composed_messages(
    texts: list[str], labels: list[str], rng, n: int = COMPOSED_MESSAGES
) -> tuple[list[str], list[str]]:
    """Long messages composed from the training split's own messages, so length alone says nothing.

    The written data's long messages are nearly all emergencies or urgent (a buried sign needs a long message);
    real questions are often long and routine. So ``n`` routine messages are composed of 3 to 6 routine training
    messages, and ``n`` messages of 2 to 5 routine ones with one emergency or urgent message in the middle, labelled
    by it. Built from the training split only, so no wording crosses into validation.

    Args:
        texts, labels: the training split (labels "routine" or a category id). rng: a numpy Generator.

    Returns:
        ``(texts, labels)`` of the ``2 * n`` composed messages (empty when the split lacks either kind).
    """
    routine = [t for t, lab in zip(texts, labels, strict=True) if lab == "routine" and "\n" not in t]
    alarm = [(t, lab) for t, lab in zip(texts, labels, strict=True) if lab != "routine" and "\n" not in t]
    if len(routine) < 6 or not alarm:
        return [], []

    def joined(pieces: list[str]) -> str:
        return " ".join(p.strip() if p.strip()[-1:] in ".!?" else p.strip() + "." for p in pieces)

    out_texts, out_labels = [], []
    for _ in range(n):
        out_texts.append(joined(list(rng.choice(routine, size=int(rng.integers(3, 7)), replace=False))))
        out_labels.append("routine")
    for _ in range(n):
        pieces = list(rng.choice(routine, size=int(rng.integers(2, 6)), replace=False))
        text, label = alarm[int(rng.integers(len(alarm)))]
        pieces.insert(int(rng.integers(1, len(pieces))), text)
        out_texts.append(joined(pieces))
        out_labels.append(label)
    return out_texts, out_labels


def train(embed, embedder_dir: str, path: Path = TRAINING_FILE, seed: int = 0, epochs: int | None = None):
    """Train the classifier on a message file, pick its thresholds on the validation split, and report.

    Args:
        embed: ``callable(list[str]) -> (n, d)`` L2-normalized embeddings of the base embedder (for the split).
        embedder_dir: the base embedder (local folder or hub id) that is fine-tuned.
        path: training messages (:func:`read_messages`).
        epochs: fine-tuning epochs (default :data:`.finetuned.EPOCHS`).

    Returns:
        ``(classifier, report)``: a :class:`.finetuned.FinetunedClassifier` trained on the train split, with the
        thresholds of :func:`pick_thresholds` on validation; the report has split sizes, the thresholds, the
        validation figures of :func:`level_figures`, AUC (emergency vs the rest), category accuracy and seconds.

    Raises:
        SafetyDataError: a message is malformed or names no category of its level.
    """
    from sklearn.metrics import roc_auc_score

    from .finetuned import EPOCHS, ROUTINE, train_finetuned

    t0 = time.perf_counter()
    rows = read_messages(path)
    check_categories(rows, path)
    conversations = [r.get("turns") or [r["text"]] for r in rows]
    texts = [conversation_text(c) for c in conversations]
    labels = [r["category"] if r["label"] != "routine" else ROUTINE for r in rows]
    train_idx, val_idx = split_messages(rows, np.asarray(embed(texts)), seed)
    extra_texts, extra_labels = composed_messages(
        [texts[i] for i in train_idx], [labels[i] for i in train_idx], np.random.default_rng(seed)
    )
    clf = train_finetuned(
        embedder_dir, [texts[i] for i in train_idx] + extra_texts, [labels[i] for i in train_idx] + extra_labels,
        epochs=epochs or EPOCHS, seed=seed,
    )  # fmt: skip
    truth = [rows[i]["label"] for i in val_idx]
    p_e, p_a = screen_probabilities(clf, [conversations[i] for i in val_idx])
    clf.thresholds = pick_thresholds(p_e, p_a, truth)
    figures = level_figures(levels_from(p_e, p_a, clf.thresholds), truth)
    cats = clf.predict([texts[i] for i in val_idx]).alarm_category
    flagged = [(c, labels[i]) for c, i, t in zip(cats, val_idx, truth, strict=True) if t != "routine"]
    report = {
        "train": int(len(train_idx)),
        "validation": int(len(val_idx)),
        "thresholds": {k: round(v, 4) for k, v in clf.thresholds.items()},
        **{f"val_{k}": v for k, v in figures.items()},
        "val_auc": float(roc_auc_score(np.asarray(truth) == "emergency", p_e)),
        "val_category_accuracy": float(np.mean([c == t for c, t in flagged])),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    clf.meta = {"embedder": Path(embedder_dir).name, "training_file": Path(path).name, **report}
    logger.info("triage classifier trained: %s", report)
    return clf, report
