"""Stage 1 of the red-flag screen: precise, auditable rules (regular expressions) per category.

Rules only fire on wordings that are unambiguous; typos, lay words and indirect phrasing are left to the learned
classifier (:mod:`.classifier`), so the rules stay short and readable. Every rule is case-insensitive and is
checked clause by clause:

* **Negation is scoped to its clause.** "No fever, just a headache" is not an alarm; "not sure what's happening
  but my tongue is swelling" is ("but" starts a new clause, and "not sure" negates no symptom).
* **Past events are not alarms.** A sentence that dates itself ("in 2019", "years ago", "as a child", "history of",
  "used to") is skipped unless the matching clause says "now", "today" or "again": "had a heart attack in 2015"
  is history; "had a heart attack years ago and now I have crushing chest pain" is not.
* **General questions are not alarms.** A question with no person and no "now" in it ("is a fall dangerous for
  older people?", "what are the signs of sepsis?") is skipped.
* **Known look-alikes are excluded** where a rule's words have a routine meaning ("choking hazard", a chest
  strain from lifting).

Sources per category: :mod:`.categories`.
"""

from __future__ import annotations

import re

_W = r"[^.!?\n]{0,60}"  # words between two parts of a rule, within one sentence

#: category id -> patterns (any match fires). Kept to wordings that are emergencies as written.
RULES: dict[str, list[str]] = {
    "heart_attack": [
        rf"chest{_W}(pain|pressure|tight|squeez|crushing|heavy|heaviness)",
        rf"(pain|pressure|tightness|squeezing|crushing){_W}chest",
        r"(i think|i'?m|he'?s|she'?s|is|am) having a heart attack",
        rf"chest{_W}(elephant|weight on)",
    ],
    "stroke": [
        rf"(face|mouth|smile){_W}(droop|drooping|lopsided|uneven)",
        rf"(slurred|slurring|garbled){_W}(speech|words|talk)",
        rf"(speech|words|talking){_W}(slurred|garbled|jumbled)",
        r"(i think|i'?m|he'?s|she'?s|is) having a stroke",
        r"(worst headache of (my|his|her) life|thunderclap headache)",
        rf"(sudden|suddenly){_W}(weak|numb|paraly){_W}(one side|arm|leg|face)",
    ],
    "breathing_difficulty": [
        r"(can'?t|cannot|unable to|struggling to) (breathe|catch (my|his|her|their) breath)",
        r"\b(stopped breathing|isn'?t breathing|not breathing)\b(?! (through|well through))",
        rf"(lips|face|tongue){_W}(turning |gone |going )?(blue|grey|gray)\b",
        r"gasping for (air|breath)",
    ],
    "choking": [
        r"\b(is|are|'s|'re|am|i'?m|keeps?|started)\s+choking\b(?! hazard)",
        r"choking (on|and can'?t)",
    ],
    "anaphylaxis": [
        rf"(throat|tongue|lips?){_W}(swell|swollen|closing|tight)",
        r"anaphyla(xis|ctic) (reaction|shock|now)|going into anaphyla",
    ],
    "severe_bleeding": [
        rf"(bleeding|blood){_W}(won'?t stop|will not stop|doesn'?t stop|not stopping|spurting)"
    ],
    "gi_bleeding": [r"(vomiting|coughing up|throwing up|puking) (up )?(blood|black)"],
    "unconscious": [
        r"\b(unconscious|unresponsive)\b",
        r"(won'?t|can'?t|cannot) (wake (him|her|them) up|be woken)",
    ],
    "seizure": [
        rf"(seizure|convulsion|fitting|fit){_W}(won'?t stop|not stopping|still going|for \d+ minutes)"
    ],
    "meningitis": [
        rf"stiff neck{_W}(fever|rash|light)|(fever|rash){_W}stiff neck",
        rf"rash{_W}(doesn'?t|does not|won'?t|didn'?t|did not) fade",
    ],
    "pregnancy_bleeding": [
        rf"(pregnan|weeks|trimester){_W}(heavy|lots of|soaking|gushing|bright red){_W}(bleed|blood)",
        rf"(bleeding|blood){_W}(soak|soaking|through) (a |my )?pad",
    ],
    "pre_eclampsia": [
        rf"(pregnan|weeks|trimester){_W}(severe|bad|terrible|pounding){_W}headache{_W}(vision|blurr|spots|flash)",
    ],
    "reduced_fetal_movement": [
        rf"(baby|fetus|foetus){_W}(not moving|stopped moving|hasn'?t moved|has not moved|isn'?t moving)",
    ],
    "postpartum_haemorrhage": [
        rf"(after (giving birth|delivery|the birth)|postpartum|gave birth){_W}(soaking|gushing|huge clots|large clots)",
    ],
    "suicide_risk": [
        r"\b(kill|killing|end|ending|take|taking) (myself|my self|my (own )?life)",
        r"\b(want|wanting|wish|going|plan|planning) to (die|be dead|not wake up)",
        r"\bsuicidal\b|\b(commit|committing|attempt) suicide\b",
        r"better off (dead|without me)|no reason to (live|go on)",
    ],
    "self_harm": [r"\b(cut|cutting|burn|burning|hurt|hurting|harm|harming) (myself|my self)\b"],
    "overdose": [
        rf"(overdose|overdosed|took too many|swallowed){_W}(pills|tablets|paracetamol|acetaminophen|tylenol)",
        rf"(took|swallowed|ate){_W}(whole bottle|entire bottle|whole packet|whole box)",
    ],
    "poisoning": [
        rf"(drank|swallowed|ate|drunk){_W}(bleach|drain cleaner|antifreeze|button battery|weed ?killer)"
    ],
    "violence_danger": [
        r"(he|she|they|my (partner|husband|wife|boyfriend|girlfriend|ex))('s| is| has| keeps| will| said he'?d| "
        r"threatened to) (going to )?(kill|strangl|chok)\w* me",
    ],
}

_CLAUSE = re.compile(
    r"[.!?;\n]+|,|\bbut\b|\bjust\b|\bthough\b|\balthough\b|\band now\b|\bnow\b", re.IGNORECASE
)
_NEGATION = re.compile(
    r"\b(no|not|never|without|denies|don'?t have|doesn'?t have|didn'?t have|haven'?t had|hasn'?t had|isn'?t|"
    r"wasn'?t|aren'?t|none)\b(?! (sure|idea|clue|know|certain))[^,]{0,25}$",
    re.IGNORECASE,
)
_PAST = re.compile(
    r"\b(in|since|back in) (19|20)\d\d\b|\b(19|20)\d\d\b|\b((\d+|a|an|one|two|three|four|five|few|several|many) )?"
    r"(years?|decades?) (ago|back)\b|\blast (year|summer|winter|spring|autumn|fall|christmas)\b|\bas a "
    r"(child|kid|teen|teenager|baby)\b|\bhistory of\b|\bused to\b|\bin the past\b|\bwhen (i|he|she) was "
    r"(young|little|a child|a kid|a teen|\d+)\b|\bprevious(ly)?\b|\b(survived|recovered from|in recovery)\b",
    re.IGNORECASE,
)
_NOW = re.compile(
    r"\b(now|right now|currently|at the moment|today|tonight|this (morning|evening|afternoon)|again)\b",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^\s*(what|which|how|why|when|where|who|can|could|is|are|does|do|should|would|will|at what)\b",
    re.IGNORECASE,
)
_PERSON_OR_NOW = re.compile(
    r"\b(i|i'?m|i'?ve|i'?d|i'?ll|me|my|mine|myself|we|we'?re|our|us|you'?re with)\b|\b(he|she|they)('s| is| has|"
    r" was| keeps| can'?t| won'?t| just| looks| seems)\b|\b(right now|currently|at the moment|today|tonight|"
    r"this (morning|evening|afternoon))\b",
    re.IGNORECASE,
)
_LOOKALIKE = re.compile(r"\b(strain|strained|pulled|lifting|heartburn|indigestion|bruised?)\b", re.IGNORECASE)
_COMPILED = {cat: [re.compile(p, re.IGNORECASE) for p in pats] for cat, pats in RULES.items()}


def clause_at(text: str, start: int) -> str:
    """The clause of ``text`` that ends at character ``start`` (from the last clause break before it)."""
    breaks = [m.end() for m in _CLAUSE.finditer(text, 0, start)]
    return text[(breaks[-1] if breaks else 0) : start]


def is_general_question(text: str) -> bool:
    """True for a question about a condition in general: question form, nobody in it, nothing happening now."""
    question = text.strip().endswith("?") or bool(_QUESTION_START.search(text))
    return question and not _PERSON_OR_NOW.search(text)


def is_past(text: str, start: int, end: int) -> bool:
    """True when the sentence around ``text[start:end]`` dates the event in the past ("in 2019", "years ago") and
    the match's own clause does not bring it back to now ("... and now I have crushing chest pain")."""
    breaks = [m.start() for m in _CLAUSE.finditer(text, 0, start)]
    clause = text[(breaks[-1] if breaks else 0) : end] + _CLAUSE.split(text[end:], maxsplit=1)[0]
    return bool(_PAST.search(_sentence(text, start))) and not _NOW.search(clause)


def match_rules(text: str) -> list[str]:
    """Categories whose rule matches ``text`` in a clause that is not negated, not past and not a look-alike.

    Args:
        text: a user's message or several user turns joined by newlines (any length).

    Returns:
        Category ids (see :data:`RULES`), in table order; empty for a general question.
    """
    if is_general_question(text):
        return []
    found = []
    for category, patterns in _COMPILED.items():
        for pattern in patterns:
            hit = next(
                (
                    m
                    for m in pattern.finditer(text)
                    if not _NEGATION.search(clause_at(text, m.start()))
                    and not is_past(text, m.start(), m.end())
                    and not (category == "heart_attack" and _LOOKALIKE.search(_sentence(text, m.start())))
                ),
                None,
            )
            if hit:
                found.append(category)
                break
    return found


def _sentence(text: str, start: int) -> str:
    """The sentence of ``text`` that holds position ``start``."""
    left = max(text.rfind(c, 0, start) for c in ".!?\n")
    stops = [i for i in (text.find(c, start) for c in ".!?\n") if i >= 0]
    return text[left + 1 : min(stops) if stops else len(text)]
