"""Stage 1 of the triage screen: precise, auditable rules (regular expressions) per category.

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
* **Not a real person now, not an alarm.** A hypothetical ("what happens if he swallows a battery?"), fiction or
  lyrics ("write a story where the hero has a heart attack"), or an animal with no person in the sentence ("my dog
  is choking") is skipped (the look-alike families of the triage spec, issue 24).
* **Known look-alikes are excluded** where a rule's words have a routine meaning ("choking hazard", a chest
  strain from lifting, a CO alarm's low-battery chirp, "she'll kill me when she sees the car").
* **Numbers where the guidance gives numbers** (:data:`FUNCTION_RULES`): NICE NG143 makes any temperature of 38 C
  (100.4 F) or more under 3 months an emergency, and 39 C or more at 3 to 6 months a same-day check.

A rule names a category; its level (emergency or urgent) is the category's (:mod:`.categories`, with sources).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
        rf"(sudden|suddenly){_W}(weak|numb|paraly){_W}(one side|arm|leg|face)",
    ],
    "thunderclap_headache": [
        r"worst headache (of (my|his|her|their) li(fe|ves)|(i'?ve|he'?s|she'?s) ever had|ever)|thunderclap headache",
        rf"(sudden|suddenly|out of nowhere|came on){_W}(worst|severe|excruciating|agoni[sz]ing|blinding|explod\w*)"
        rf"{_W}headache",
        rf"headache{_W}(like (being|i'?ve been|i was|he was|she was|i got|someone) (hit|struck|kicked|hitting)|"
        r"came on in (seconds|a second|an instant)|within (a|one) minute|peaked in (seconds|a minute))",
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
        r"(?<!knocked me )(?<!bored me )\b(unconscious|unresponsive)\b",
        r"(won'?t|can'?t|cannot) (wake (him|her|them) up|be woken)",
    ],
    "seizure": [
        rf"(seizure|convulsion|fitting|fit){_W}(won'?t stop|not stopping|still going|for \d+ minutes)"
    ],
    "meningitis": [
        rf"stiff neck{_W}(?<!no )(?<!without )(?<!not a )(fever|rash|light)|(fever|rash){_W}stiff neck",
        rf"rash{_W}(doesn'?t|does not|won'?t|didn'?t|did not) fade",
    ],
    "testicular_torsion": [
        rf"(sudden|suddenly|out of nowhere|woke (up )?with|severe|agoni[sz]ing|excruciating|terrible|unbearable)"
        rf"{_W}(pain|ache|agony){_W}(testicle|testis|testicles|scrotum)",
        rf"(testicle|testis|scrotum){_W}(sudden|suddenly|agony|agoni[sz]ing|excruciating|severe pain|unbearable)",
    ],
    "cauda_equina": [
        rf"numb(ness)?{_W}(saddle|between (my|his|her|the) legs|(around|in|on) (my|his|her|the) "
        r"(bum|bottom|buttocks|anus|back passage|genitals|private parts|privates))",
        rf"(saddle|bum|bottom|back passage|genitals|privates){_W}(numb|no feeling|can'?t feel)",
        rf"back{_W}(can'?t|cannot|unable to|struggling to|trouble|difficulty) (pee|wee|urinate|control (my |his |"
        r"her )?(bladder|bowels?))",
    ],
    "febrile_infant": [],  # numbers, not words: :data:`FUNCTION_RULES`
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
    "poisoning": [rf"(drank|swallowed|ate|drunk){_W}(bleach|drain cleaner|antifreeze|weed ?killer)"],
    "carbon_monoxide": [
        rf"(carbon monoxide|\bco\b) (alarm|detector){_W}(going off|went off|is sounding|sounding|keeps going off|"
        r"alarming|screaming|goes off)",
        r"(carbon monoxide|\bco\b) (leak|is leaking|poisoning)",
    ],
    "button_battery_or_magnet": [
        rf"(swallowed|swallow|swallowing|ate|eaten|put|stuck|pushed){_W}\b(button|coin|watch|lithium|disc|"
        r"round) ?(cell|batter(y|ies))",
        rf"(swallowed|swallow|swallowing|ate|eaten){_W}\bbatter(y|ies)\b",
        rf"(swallowed|swallowing|ate|eaten){_W}\b(magnets|magnet balls|magnetic balls)\b",
        rf"\b(batter(y|ies)|magnets?){_W}(up (his|her|my|their) nose|in (his|her|my|their) (ear|nose))",
    ],
    "acute_angle_closure_glaucoma": [
        rf"eye{_W}(pain|painful|hurts|agony|agoni[sz]ing){_W}(halo|haloes|halos|rainbow|blurr|vomit|sick|nause)",
        rf"(halo|haloes|halos|rainbows?) (around|round) (the )?lights{_W}(pain|painful|hurt|red eye)",
        rf"(pain|painful|red eye){_W}(halo|haloes|halos|rainbows?) (around|round) (the )?lights",
    ],
    "urgent_child_fever": [],  # numbers, not words: :data:`FUNCTION_RULES`
    "violence_danger": [
        r"(he|she|they|my (partner|husband|wife|boyfriend|girlfriend|ex))('s| is| has| keeps| will| said he'?d| "
        r"threatened to) (going to )?(kill|strangl|chok)\w* me\b(?! (if|when|for|lol|haha))",
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
_LOOKALIKE = re.compile(
    r"\b(strain|strained|pulled|lifting|heartburn|indigestion|bruised?|(a (little|bit)|slightly|mildly) (tight|sore|"
    r"achy))\b",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"\b(what if|what happens (if|when)|what would happen|what should i do if|in case|how (do|can|should) (i|we) "
    r"(prevent|stop|avoid)|to prevent|hypothetically)\b",
    re.IGNORECASE,
)
_FICTION = re.compile(
    r"\b(story|stories|novel|poem|lyrics|song|screenplay|script|fiction|fictional|role-?play|my character|the "
    r"character|the hero|the heroine)\b",
    re.IGNORECASE,
)
_ANIMAL = re.compile(
    r"\b(dog|dogs|puppy|pup|cat|cats|kitten|rabbit|bunny|hamster|guinea pig|horse|pony|parrot|budgie|ferret|"
    r"tortoise|pet|vet)\b",
    re.IGNORECASE,
)
_HUMAN = re.compile(
    r"\b(i|i'?m|i'?ve|me|myself|we|us|son|daughter|baby|child|kid|toddler|boy|girl|husband|wife|partner|"
    r"boyfriend|girlfriend|mum|mom|dad|mother|father|grandma|grandad|granddad|nan|gran|brother|sister|friend|"
    r"neighbou?r|man|woman|person|patient)\b",
    re.IGNORECASE,
)
_CO_LOOKALIKE = re.compile(r"\b(test|testing|tested|batter(y|ies)|chirp\w*)\b", re.IGNORECASE)
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


def is_not_real(sentence: str, category: str) -> bool:
    """True for a sentence that is not about a real person now: a hypothetical ("what if he swallows ..."), fiction
    or lyrics ("write a story where ..."), or an animal with no person in the sentence ("my dog is choking")."""
    if _HYPOTHETICAL.search(sentence) or _FICTION.search(sentence):
        return True
    if category == "carbon_monoxide":  # pets falling ill with the family is a sign, not a look-alike
        return bool(_CO_LOOKALIKE.search(sentence))
    return bool(_ANIMAL.search(sentence)) and not _HUMAN.search(sentence)


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired: its ``category``, the match's ``start`` / ``end`` in the text, and its ``sentence``."""

    category: str
    start: int
    end: int
    sentence: str


def find_rules(text: str) -> list[RuleHit]:
    """Every category whose rule matches ``text`` in a clause that is not negated, not past, not a general
    question, not hypothetical, fiction or about an animal, and not a known look-alike; the first match of each.

    Args:
        text: a user's message or several user turns joined by newlines (any length).

    Returns:
        :class:`RuleHit` per category, in table order (:data:`RULES`); empty for a general question.
    """
    if is_general_question(text):
        return []
    found = []
    for category, patterns in _COMPILED.items():
        matches = (m.span() for p in patterns for m in p.finditer(text))
        if category in FUNCTION_RULES:
            matches = FUNCTION_RULES[category](text)
        for start, end in matches:
            sentence = _sentence(text, start)
            if (
                _NEGATION.search(clause_at(text, start))
                or is_past(text, start, end)
                or is_not_real(sentence, category)
                or (category == "heart_attack" and _LOOKALIKE.search(sentence))
            ):
                continue
            found.append(RuleHit(category, start, end, sentence.strip()))
            break
    return found


def match_rules(text: str) -> list[str]:
    """The categories of :func:`find_rules` (ids in table order)."""
    return [hit.category for hit in find_rules(text)]


_NUMBER_WORDS = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
_AGE = re.compile(
    r"\b(?P<n>\d{1,2}(?:\.5)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a)[- ]?"
    r"(?P<unit>days?|d|weeks?|wks?|w|months?|mo|mths?)[- ]?(old|olds?|of age)\b|\b(?P<newborn>newborn|new-born|"
    r"neonate)\b|\b(baby|son|daughter|he|she|grandson|granddaughter|niece|nephew|little one)('s| is| is only| "
    r"just turned) (?P<n2>\d{1,2}(?:\.5)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve) "
    r"(?P<unit2>days?|weeks?|wks?|months?)\b",
    re.IGNORECASE,
)
_TEMPERATURE = re.compile(
    r"(?<![\d.])(?P<v>\d{2,3}(?:[.,]\d{1,2})?)\s*(?:°\s*|degrees?\s*|deg\s*)?(?P<unit>c\b|celsius|f\b|fahrenheit)?",
    re.IGNORECASE,
)
_TEMPERATURE_WORD = re.compile(r"\b(temp|temperature|fever|thermometer|reading|feverish|febrile|hot)\b", re.I)
_CONDITIONAL = re.compile(r"\b(if|when|above|over|below|under|what if|at what)\W*$", re.IGNORECASE)


def age_in_days(text: str) -> float | None:
    """The youngest age written in ``text`` ("6 week old", "newborn", "she's 10 days"), in days; None if none."""
    ages = []
    for m in _AGE.finditer(text):
        if m.group("newborn"):
            ages.append(7.0)
            continue
        raw, unit = (m.group("n"), m.group("unit")) if m.group("n") else (m.group("n2"), m.group("unit2"))
        n = 1.0 if raw.lower() == "a" else float(_NUMBER_WORDS.get(raw.lower(), raw))
        unit = unit.lower()
        ages.append(n * (1 if unit.startswith("d") else 30.4 if unit.startswith("m") else 7))
    return min(ages) if ages else None


def temperatures_c(text: str) -> list[tuple[float, int, int]]:
    """Body temperatures written in ``text`` as ``(celsius, start, end)``: 35-43 read as C, 95-110 as F; a bare
    whole number counts only with a unit or a temperature word (temp, fever, thermometer) in its sentence."""
    found = []
    for m in _TEMPERATURE.finditer(text):
        value = float(m.group("v").replace(",", "."))
        unit = (m.group("unit") or "").lower()[:1]
        decimal = "." in m.group("v") or "," in m.group("v")
        if not unit and not decimal and not _TEMPERATURE_WORD.search(_sentence(text, m.start())):
            continue
        if unit != "f" and 35.0 <= value <= 43.0:
            found.append((value, m.start(), m.end()))
        elif unit != "c" and 95.0 <= value <= 110.0:
            found.append((round((value - 32) / 1.8, 2), m.start(), m.end()))
    return found


def fever_spans(text: str, min_c: float, min_age_days: float, max_age_days: float) -> list[tuple[int, int]]:
    """Spans of temperatures >= ``min_c`` when the youngest age ``text`` names is in ``[min_age_days,
    max_age_days)``, except a temperature given as a condition ("if it goes over 38 C")."""
    age = age_in_days(text)
    if age is None or not min_age_days <= age < max_age_days:
        return []
    return [
        (start, end)
        for value, start, end in temperatures_c(text)
        if value >= min_c and not _CONDITIONAL.search(text[max(0, start - 20) : start])
    ]


#: rules on numbers (NICE NG143): any fever of 38 C or more under 3 months is high risk (red); 39 C or more at 3 to
#: 6 months is intermediate risk (amber: be seen today).
FUNCTION_RULES = {
    "febrile_infant": lambda text: fever_spans(text, 38.0, 0.0, 91.0),
    "urgent_child_fever": lambda text: fever_spans(text, 39.0, 91.0, 183.0),
}


_SENTENCE_STOP = re.compile(r"[.!?]+(?=\s|$)|\n")


def _sentence(text: str, start: int) -> str:
    """The sentence of ``text`` that holds position ``start`` (a full stop inside a number, "38.2", ends nothing)."""
    left = max((m.end() for m in _SENTENCE_STOP.finditer(text, 0, start)), default=0)
    stop = _SENTENCE_STOP.search(text, start)
    return text[left : stop.start() if stop else len(text)]
