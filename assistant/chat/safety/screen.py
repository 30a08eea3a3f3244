"""The triage screen every front-end runs before answering: rules, then the learned classifier, graded by urgency.

Levels (:mod:`.categories`): ``emergency`` (red: call the emergency number, go to A&E or call a crisis line now),
``urgent`` (amber: be seen today) and ``routine``; the most urgent level either stage finds wins. The classifier
reads the last turn whole, a long last turn sentence by sentence too (a red flag buried in a calm message scores
as it would alone, :mod:`.segments`), and the recent user turns joined, so "I had my baby ten days ago" followed by
"my calf is hot and swollen and now I'm short of breath" is caught as a possible clot. All these texts go to the
classifier in one call. The screening names the sentence that triggered it (:attr:`Screening.trigger`). The advice
shown first depends on the level and category (:mod:`.advice`): crisis lines for suicide and self-harm, poison
control for overdose and poisoning, a domestic-violence line for someone in danger, "This should be checked today:
..." with where to go for an urgent category.

Figures (sensitivity per level, false alarms, buried red flags, screening time):
``python -m assistant safety eval``; docs/results.md, red-flag triage.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .advice import advice_for, urgent_advice
from .categories import CATEGORIES, EMERGENCY, LEVELS, ROUTINE, URGENT, level_of
from .classifier import model_dir, save_atomically, train
from .finetuned import FinetunedClassifier
from .rules import find_rules
from .segments import texts_to_read

logger = logging.getLogger(__name__)


DISCLAIMER = (
    "llama-md is not a doctor and gives general information only. "
    "For diagnosis or treatment, talk to a health professional."
)
TRIGGER_CHARS = 200  # a quoted trigger is cut to this many characters


@dataclass
class Screening:
    """Result of a screen.

    ``urgency``: emergency, urgent or routine; :attr:`emergency` is True exactly when it is emergency. ``category``:
    the category the advice follows; ``categories``: every category found at that level (rules first).
    ``trigger``: the sentence of the user's last turn that set the level (empty when routine). ``stage``: "rules",
    "classifier", "both" or "" (routine). ``probability`` / ``alarm_probability``: the classifier's emergency and
    emergency-or-urgent mass (max over the texts it read). ``message``: the advice to show before any answer
    (plain text, empty when routine).
    """

    urgency: str = ROUTINE
    category: str | None = None
    trigger: str = ""
    stage: str = ""
    categories: list[str] = field(default_factory=list)
    probability: float = 0.0
    alarm_probability: float = 0.0
    message: str = ""

    @property
    def emergency(self) -> bool:
        return self.urgency == EMERGENCY

    @property
    def flags(self) -> list[str]:
        """The categories found (kept for callers that read the old rule names)."""
        return list(self.categories)

    def to_json(self) -> dict:
        """The fields plus ``emergency``, probabilities rounded to 4 places (the CLI's ``--json``)."""
        data = asdict(self)
        data["probability"] = round(self.probability, 4)
        data["alarm_probability"] = round(self.alarm_probability, 4)
        return {"urgency": self.urgency, "emergency": self.emergency, **data}


class Screener:
    """Rules plus the learned classifier.

    Args:
        classifier: a :class:`.finetuned.FinetunedClassifier` (anything with ``predict(texts) -> Prediction`` and
            ``thresholds``).
        run: how to call torch work (the chat's torch thread; default: inline).
    """

    def __init__(self, classifier, run=None):
        self.classifier = classifier
        self.run = run or (lambda fn, *a: fn(*a))

    def screen_conversation(self, turns: Sequence[str]) -> Screening:
        """Screen the user's recent turns (oldest first; the last is the message being answered).

        The rules read the last :data:`.segments.RECENT_TURNS` turns joined and count a match that ends in the last turn; the
        classifier reads what :func:`.segments.texts_to_read` plans, in one call. The more urgent stage wins; at
        equal level both count ("both").

        Returns:
            :class:`Screening`; routine when no turn has text.
        """
        plan = texts_to_read(turns)
        if not plan.turns:
            return Screening()
        joined = "\n".join(plan.turns)
        last_start = len(joined) - len(plan.last)
        hits = [h for h in find_rules(joined) if h.end > last_start]
        rule_level = min((level_of(h.category) for h in hits), key=LEVELS.index, default=ROUTINE)
        texts = plan.texts
        pred = self.run(self.classifier.predict, texts)
        thresholds = self.classifier.thresholds
        p_e, p_a = float(np.max(pred.p_emergency)), float(np.max(pred.p_alarm))
        learned = (
            EMERGENCY
            if p_e >= thresholds["emergency"]
            else URGENT
            if p_a >= thresholds["urgent"]
            else ROUTINE
        )
        urgency = min(rule_level, learned, key=LEVELS.index)
        if urgency == ROUTINE:
            return Screening(probability=p_e, alarm_probability=p_a)
        scores = pred.p_emergency if learned == EMERGENCY else pred.p_alarm
        best = int(np.argmax(scores))
        learned_cat = (pred.emergency_category if learned == EMERGENCY else pred.alarm_category)[best]
        rule_cats = [h.category for h in hits if level_of(h.category) == urgency]
        categories = list(dict.fromkeys(rule_cats + ([learned_cat] if learned == urgency else [])))
        stage = "both" if rule_cats and learned == urgency else ("rules" if rule_cats else "classifier")
        if rule_cats:
            trigger = next(h.sentence for h in hits if h.category == rule_cats[0])
        elif 0 < best <= len(plan.pieces):
            trigger = plan.pieces[best - 1].text
        elif (
            plan.pieces
        ):  # the whole message (or conversation) scored highest: quote its most alarming sentence
            trigger = plan.pieces[int(np.argmax(scores[1 : len(plan.pieces) + 1]))].text
        else:
            trigger = plan.last
        message = advice_for(categories) if urgency == EMERGENCY else urgent_advice(categories[0])
        return Screening(urgency, categories[0], trigger, stage, categories, p_e, p_a, message)

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
    logger.info("training the triage classifier into %s (once; a few minutes on 2 CPU cores)", folder)
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


_MARKDOWN = re.compile(r"([\\`*_\[\]()#+!|<>{}~-])")


def quote(text: str, max_chars: int = TRIGGER_CHARS) -> str:
    """The user's words as Markdown that shows them as typed: one line, cut to ``max_chars``, symbols escaped."""
    text = " ".join(text.split())
    text = text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"
    return _MARKDOWN.sub(r"\\\1", text)


def banner(screening: dict) -> str:
    """The banner the chat shows above an emergency or urgent answer (Markdown; the user's words escaped).

    Emergency: "**<title>.** <first line of the advice>"; urgent: "**This should be checked today: <reason>.**
    <where to go>"; both then ``You wrote: "<trigger>"`` when there is a trigger. Empty for routine.

    Args:
        screening: ``Answer.screening`` (``urgency``, ``category``, ``categories``, ``trigger``) or
            :meth:`Screening.to_json`.
    """
    urgency = screening.get("urgency") or (EMERGENCY if screening.get("emergency") else ROUTINE)
    if urgency == ROUTINE:
        return ""
    category = screening.get("category")
    known = CATEGORIES.get(category or "")
    if urgency == EMERGENCY:
        title = known.title if known else "Possible emergency"
        text = f"**{title}.** {advice_for(screening.get('categories') or [category]).split(chr(10))[0]}"
    else:
        reason, _, rest = urgent_advice(category).partition(". ")
        text = f"**{reason}.** {rest}"
    trigger = screening.get("trigger") or ""
    return text + (f'\n\nYou wrote: "{quote(trigger)}"' if trigger else "")


def emergency_banner(screening: dict) -> str:
    """The banner for an emergency or urgent screening (:func:`banner`; the name the chat used before levels)."""
    return banner(screening)


def screen(text: str, settings=None) -> Screening:
    """Screen one user message with the process's screener (:func:`load_screener`)."""
    return load_screener(settings).screen(text)


def screen_conversation(turns: Sequence[str], settings=None) -> Screening:
    """Screen the user's recent turns with the process's screener (:func:`load_screener`)."""
    return load_screener(settings).screen_conversation(turns)
