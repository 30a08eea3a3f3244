"""Triage run before every answer: precise rules plus a learned classifier, graded emergency | urgent | routine.

``screen(text)`` / ``screen_conversation(turns)`` -> :class:`Screening` (``urgency``, ``category``, ``trigger``);
the rules are in :mod:`.rules`, the classifier in :mod:`.classifier`, what it reads of a long message in
:mod:`.segments`, the categories with their levels and sources in :mod:`.categories`, the advice in :mod:`.advice`. Train: ``python -m assistant safety train``; evaluate: ``python -m assistant safety eval``.
"""

from .advice import advice_for
from .categories import CATEGORIES, EMERGENCY, LEVELS, ROUTINE, URGENT
from .screen import (
    DISCLAIMER,
    Screener,
    Screening,
    banner,
    emergency_banner,
    load_screener,
    screen,
    screen_conversation,
)

__all__ = [
    "CATEGORIES",
    "DISCLAIMER",
    "EMERGENCY",
    "LEVELS",
    "ROUTINE",
    "URGENT",
    "Screener",
    "Screening",
    "advice_for",
    "banner",
    "emergency_banner",
    "load_screener",
    "screen",
    "screen_conversation",
]
