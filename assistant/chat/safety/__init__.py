"""Red-flag triage run before every answer: precise rules plus a learned classifier, category-specific advice.

``screen(text)`` / ``screen_conversation(turns)`` -> :class:`Screening`; the rules are in :mod:`.rules`, the
classifier in :mod:`.classifier`, the categories and their sources in :mod:`.categories`, the advice in
:mod:`.advice`. Train: ``python -m assistant safety train``; evaluate: ``python -m assistant safety eval``.
"""

from .advice import advice_for
from .categories import CATEGORIES
from .screen import (
    DISCLAIMER,
    Screener,
    Screening,
    emergency_banner,
    load_screener,
    screen,
    screen_conversation,
)

__all__ = [
    "CATEGORIES",
    "DISCLAIMER",
    "Screener",
    "Screening",
    "advice_for",
    "emergency_banner",
    "load_screener",
    "screen",
    "screen_conversation",
]
