"""The red-flag screen as it was before the learned classifier (regular expressions only), kept verbatim as the
baseline that ``benchmarks/safety_bench.py`` scores side by side with the current screen. Not used by the chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DISCLAIMER = (
    "llama-md is not a doctor and gives general information only. "
    "For diagnosis or treatment, talk to a health professional."
)

EMERGENCY_MESSAGE = (
    "**This may be an emergency. Call your local emergency number now (911 in the US, 112 in the EU, 999 in the UK) "
    "or go to the nearest emergency department.** Do not wait for an online answer."
)
CRISIS_MESSAGE = (
    "**If you are thinking about suicide or harming yourself, call or text 988 (US Suicide & Crisis Lifeline), "
    "call your local emergency number, or go to the nearest emergency department now.** You are not alone."
)

_ANY = r"[^.!?\n]{0,60}"  # words between two parts of a rule, within one sentence

#: name -> patterns (any match flags). Order does not matter.
RED_FLAGS: dict[str, list[str]] = {
    "heart attack": [
        rf"chest{_ANY}(pain|pressure|tight|squeez|hurts?|heavy|crushing)",
        rf"(pain|pressure|tight|squeez|crushing){_ANY}chest",
        rf"chest{_ANY}(arm|jaw|neck|back|shoulder)",
        r"heart attack",
        rf"clutching{_ANY}chest|chest{_ANY}(elephant|weight on)",
    ],
    "stroke": [
        rf"(face|mouth|smile){_ANY}(droop|drooping|numb|uneven|lopsided)",
        rf"(slurred|slurring|garbled){_ANY}(speech|words|talk)|can'?t (speak|talk) (properly|clearly)|trouble speaking",
        rf"(sudden|suddenly){_ANY}(weak|numb|paraly)[^.!?\n]{{0,40}}(arm|leg|side|face)",
        rf"(one side|left side|right side){_ANY}(weak|numb|paraly|can'?t move)",
        rf"(sudden|suddenly){_ANY}(arm|leg|side|face){_ANY}(weak|numb|paraly|can'?t move)",
        r"having a stroke",
        rf"(speech|words|talking){_ANY}(slurred|garbled|wrong|strange|jumbled)",
        r"can'?t (raise|lift|move) (his|her|my|their) (left |right )?(arm|leg)",
        r"(worst headache|thunderclap headache)",
    ],
    "breathing": [
        r"(can'?t|cannot|unable to|struggling to|hard to|difficulty|trouble) (breathe|breathing|catch (my|his|her) breath)",
        rf"(lips|face|skin){_ANY}(turning |going )?(blue|grey|gray)",
        r"choking",
    ],
    "anaphylaxis": [
        rf"(throat|tongue|lips?){_ANY}(swell|swollen|closing|tight)",
        r"anaphyla",
        rf"(allergic|allergy|sting|stung|peanut|epipen){_ANY}(breath|swell|swollen|hives|dizzy|faint)",
    ],
    "pregnancy bleeding": [
        rf"(pregnan|weeks|trimester){_ANY}(heavy|lots of|soaking|gushing|bright red){_ANY}(bleed|blood)",
        rf"(heavy|lots of|soaking|gushing|bright red){_ANY}(bleed|blood){_ANY}(pregnan|weeks|trimester)",
        rf"(bleeding|blood){_ANY}(soak|soaking|through) (a |my )?pad",
        rf"(pregnan|weeks|trimester){_ANY}(soaked|soaking|pouring){_ANY}blood",
        rf"(after (giving birth|delivery|the birth)|postpartum){_ANY}(heavy|soaking|clots|gushing)",
    ],
    "pre-eclampsia": [
        rf"(pregnan|weeks|trimester|postpartum){_ANY}(severe|bad|terrible|pounding){_ANY}headache{_ANY}(vision|blurr|seeing|spots|flash)",
        rf"(headache){_ANY}(blurr|vision|seeing spots|flashing)[^.!?\n]{{0,80}}(pregnan|weeks|trimester)",
        rf"(pregnan|weeks|trimester){_ANY}(blurr|vision|seeing spots|flashing){_ANY}headache",
        rf"(pregnan|weeks|trimester){_ANY}(seizure|fit|convuls)",
    ],
    "reduced fetal movement": [
        rf"(baby|fetus|foetus){_ANY}(not moving|has not moved|stopped moving|moving less|hasn'?t moved|isn'?t moving|less movement|fewer (kicks|movements))",
        rf"(can'?t|cannot|haven'?t|have not|don'?t|do not) (feel|felt){_ANY}(baby|kicks|movement)",
        r"(no|fewer|reduced|decreased) (fetal |baby'?s? )?(movements?|kicks)",
    ],
    "labour or waters": [
        rf"(waters?|water) (broke|has broken|have broken|breaking){_ANY}(\b(2\d|3[0-6]) weeks|green|brown|smell)",
    ],
    "suicide or self-harm": [
        r"(kill|killing|hurt|hurting|harm|harming) (myself|my self)",
        r"suicid",
        r"(end|ending|take|taking) (my|my own) life",
        r"(want|wanting|wish) to (die|be dead|not wake up)",
        r"no reason to (live|go on)",
        r"(go to sleep|fall asleep|sleep) and (never|not) wake up",
        r"better off (dead|without me)",
    ],
    "infant fever or lethargy": [
        rf"(baby|infant|newborn|week[- ]old|month[- ]old){_ANY}(fever|temperature|hot){_ANY}(letharg|floppy|limp|won'?t wake|hard to wake|not feeding|won'?t feed|drowsy|unresponsive)",
        rf"(baby|infant|newborn|week[- ]old|month[- ]old){_ANY}(letharg|floppy|limp|won'?t wake|hard to wake|unresponsive|not feeding|won'?t feed){_ANY}(fever|temperature|hot)",
        rf"(newborn|week[- ]old|\b[12][- ]month[- ]old){_ANY}(fever|temperature of 38|38(\.\d)? ?°?c)",
        rf"(baby|infant|newborn){_ANY}(seizure|\bfit\b|convuls|not breathing|turning blue|\bblue\b(?!s))",
    ],
    "unconscious or seizure": [
        r"(unconscious|passed out and (won'?t|can'?t) wake|not waking up|unresponsive)",
        rf"(seizure|convulsion|fitting){_ANY}(won'?t stop|not stopping|first time|minutes)",
    ],
    "overdose or poisoning": [
        rf"(overdose|overdosed|took too many|swallowed){_ANY}(pills|tablets|bleach|poison|medicine|paracetamol|acetaminophen)",
        rf"(took|swallowed|ate){_ANY}(whole bottle|entire bottle|bottle of (pills|tablets))",
    ],
    "severe bleeding": [
        rf"(bleeding|blood){_ANY}(won'?t stop|will not stop|doesn'?t stop|not stopping|spurting)",
        r"(vomiting|coughing up|throwing up) (blood|black)",
    ],
    "meningitis signs": [
        rf"(stiff neck){_ANY}(fever|rash|light)|(fever|rash){_ANY}stiff neck",
        rf"rash{_ANY}(doesn'?t fade|does not fade|glass)",
    ],
}

_NEGATION = re.compile(
    r"\b(no|not|never|without|don'?t have|doesn'?t have|didn'?t have|haven'?t had|denies)\b[^.!?\n,]{0,25}$"
)
_INFORMATIONAL = re.compile(
    r"^\s*(what|which|how|why|when|can|could|is|are|does|do|should)\b[^?]*"
    r"\b(signs?|symptoms?|causes?|risk|risks|prevent|prevention|treat|treatment|recogni[sz]e|mean|difference|"
    r"happen|common|normal|safe|tell if|know if)\b",
    re.IGNORECASE,
)
_PERSONAL = re.compile(
    r"\b(i|i'?m|i'?ve|my|me|mine|we|our|she|he|her|his|my (wife|husband|partner|son|daughter|baby|mother|father))\b"
    r"[^.!?\n]{0,40}\b(have|has|having|had|feel|feels|feeling|is|am|are|was|been|keeps?|can'?t|won'?t|started|got)\b",
    re.IGNORECASE,
)

_COMPILED = {name: [re.compile(p, re.IGNORECASE) for p in patterns] for name, patterns in RED_FLAGS.items()}


@dataclass
class Screening:
    """Result of :func:`screen`: ``emergency`` is True when any red flag matched; ``message`` goes first."""

    emergency: bool
    flags: list[str] = field(default_factory=list)
    message: str = ""


def _negated(text: str, start: int) -> bool:
    """True when the words just before position ``start`` in the same clause negate the match."""
    return bool(_NEGATION.search(text[max(0, start - 40) : start]))


def screen(text: str) -> Screening:
    """Check a user message for red-flag symptoms.

    Args:
        text: the user's message (any length).

    Returns:
        Screening with the matched red-flag names and the emergency message to show before any answer
        (the crisis message for suicide or self-harm).
    """
    flags = []
    for name, patterns in _COMPILED.items():
        for pattern in patterns:
            match = pattern.search(text)
            if match and not _negated(text, match.start()):
                flags.append(name)
                break
    if flags and name_is_informational(text) and "suicide or self-harm" not in flags:
        flags = []
    if not flags:
        return Screening(False)
    message = CRISIS_MESSAGE if "suicide or self-harm" in flags else EMERGENCY_MESSAGE
    if "suicide or self-harm" in flags and len(flags) > 1:
        message = CRISIS_MESSAGE + "\n\n" + EMERGENCY_MESSAGE
    return Screening(True, flags, message)


def name_is_informational(text: str) -> bool:
    """True for a general question about a condition with no sign that someone has the symptoms now."""
    return bool(_INFORMATIONAL.search(text)) and not _PERSONAL.search(text)
