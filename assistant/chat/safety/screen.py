"""The red-flag screen every front-end runs before answering: rules, then the learned classifier.

A conversation is an emergency when either stage says so (:func:`screen_conversation`). The screen reads the
recent user turns together, so "I had my baby ten days ago" followed by "my calf is hot and swollen and now I'm
short of breath" is caught as a possible clot. The advice shown first depends on the category
(:func:`.advice.advice_for`): crisis lines for suicide and self-harm, poison control for overdose and poisoning, a
domestic-violence line for someone in danger, not leaving a baby alone with a person who may harm it.

Figures (sensitivity, false-alarm rate, per-category recall on a held-out set, screening time):
``python -m assistant safety eval``; docs/results.md, red-flag triage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .advice import advice_for
from .classifier import conversation_text, model_dir, save_atomically, train
from .finetuned import FinetunedClassifier
from .rules import match_rules

logger = logging.getLogger(__name__)

DISCLAIMER = (
    "llama-md is not a doctor and gives general information only. "
    "For diagnosis or treatment, talk to a health professional."
)
RECENT_TURNS = 3  # user turns the screen reads together (the current one and the two before)


@dataclass
class Screening:
    """Result of a screen.

    ``emergency``: either stage fired. ``stage``: "rules", "classifier", "both" or "" (none). ``category``: the
    category the advice follows (rules first, then the classifier's); ``categories``: every category found.
    ``probability``: the classifier's emergency probability (max over the texts it read); ``message``: the advice
    to show before any answer (plain text, empty when not an emergency).
    """

    emergency: bool
    stage: str = ""
    category: str | None = None
    categories: list[str] = field(default_factory=list)
    probability: float = 0.0
    message: str = ""

    @property
    def flags(self) -> list[str]:
        """The categories found (kept for callers that read the old rule names)."""
        return list(self.categories)


class Screener:
    """Rules plus the learned classifier.

    Args:
        classifier: a :class:`.finetuned.FinetunedClassifier` (anything with ``predict_texts(texts) -> (p, cats)``
            and ``threshold``).
        run: how to call torch work (the chat's torch thread; default: inline).
    """

    def __init__(self, classifier, run=None):
        self.classifier = classifier
        self.run = run or (lambda fn, *a: fn(*a))

    def screen_conversation(self, turns: Sequence[str]) -> Screening:
        """Screen the user's recent turns (oldest first; the last is the message being answered).

        The rules read the last :data:`RECENT_TURNS` turns joined; the classifier reads the last turn alone and
        the recent turns joined, and counts the higher probability.

        Returns:
            :class:`Screening`; not an emergency when no turn has text.
        """
        recent = [t for t in turns if t and t.strip()][-RECENT_TURNS:]
        if not recent:
            return Screening(False)
        joined = conversation_text(recent)
        rule_hits = match_rules(joined)
        texts = [recent[-1]] + ([joined] if len(recent) > 1 else [])
        p, cats = self.run(self.classifier.predict_texts, texts)
        best = int(np.argmax(p))
        learned = bool(p[best] >= self.classifier.threshold)
        categories = list(dict.fromkeys(rule_hits + ([cats[best]] if learned else [])))
        if not categories:
            return Screening(False, probability=float(p[best]))
        stage = "both" if rule_hits and learned else ("rules" if rule_hits else "classifier")
        return Screening(True, stage, categories[0], categories, float(p[best]), advice_for(categories))

    def screen(self, text: str) -> Screening:
        """Screen one message (see :meth:`screen_conversation`)."""
        return self.screen_conversation([text])


_LOCK = threading.Lock()
_SCREENERS: dict[str, Screener] = {}


def build_classifier(settings=None, *, retrain: bool = False) -> tuple[Path, dict | None]:
    """Make sure the trained classifier for this training file and embedder is in its cache folder.

    Returns:
        ``(folder, report)``: report is None when the folder already existed and ``retrain`` is False.

    Raises:
        ModelUnavailableError: the base embedder cannot be loaded (see ``assistant.models``).
    """
    from assistant.config import load_settings
    from assistant.models import embedder_path, load_embedder

    settings = settings or load_settings()
    base = embedder_path(settings=settings)
    folder = model_dir(base)
    if folder.is_dir() and not retrain:
        return folder, None
    logger.info("training the red-flag classifier into %s (once; a few minutes on 2 CPU cores)", folder)
    embedder = load_embedder(settings=settings)
    clf, report = train(lambda texts: embedder.encode(texts, normalize_embeddings=True, batch_size=64), base)
    if retrain and folder.is_dir():
        import shutil

        shutil.rmtree(folder)
    save_atomically(clf, folder)
    return folder, report


def load_screener(settings=None) -> Screener:
    """The process's screener: the classifier loaded once (built first when missing, :func:`build_classifier`),
    run on the chat's torch thread.

    Raises:
        ModelUnavailableError: the base embedder cannot be loaded (see ``assistant.models``).
    """
    from assistant import torch_thread
    from assistant.models import embedder_path

    key = embedder_path(settings=settings)  # cheap; the fingerprint (a sha256 of the data) is taken once
    with _LOCK:
        if key not in _SCREENERS:
            folder, _ = torch_thread.run(build_classifier, settings)
            clf = torch_thread.run(FinetunedClassifier.from_folder, folder)
            _SCREENERS[key] = Screener(clf, torch_thread.run)
        return _SCREENERS[key]


def emergency_banner(screening: dict) -> str:
    """The one-line banner the chat shows above an emergency answer (Markdown, no user text in it).

    Args:
        screening: ``Answer.screening`` (``category`` and ``categories`` from a :class:`Screening`).
    """
    from .categories import CATEGORIES

    category = CATEGORIES.get(screening.get("category") or "")
    title = category.title if category else "Possible emergency"
    return f"**{title}.** {advice_for(screening.get('categories') or [screening.get('category')]).split(chr(10))[0]}"


def screen(text: str, settings=None) -> Screening:
    """Screen one user message with the process's screener (:func:`load_screener`)."""
    return load_screener(settings).screen(text)


def screen_conversation(turns: Sequence[str], settings=None) -> Screening:
    """Screen the user's recent turns with the process's screener (:func:`load_screener`)."""
    return load_screener(settings).screen_conversation(turns)
