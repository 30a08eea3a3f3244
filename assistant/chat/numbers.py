"""The number check: every quantity in a generated answer must appear in the passages given to the model.

    from assistant.chat.numbers import check_numbers
    for result in check_numbers("Take 60 mg of iron daily [1].", ["... 30 mg to 60 mg of elemental iron ..."]):
        print(result.sentence, [q.text for q in result.unsupported])

**Rule.** A quantity is a number (digits with decimals or thousands commas, ``.5``, a number word "two" ...
"ninety", "twenty-four", "hundred"), a range of two (``30–60``, ``30 to 60``, ``between 1 and 3``) or a frequency
word ("once", "twice", "thrice" = 1, 2, 3 times), with the unit that follows it when it is a known one (mass
mg/g/µg/kg, IU, volume ml/l, %, time minutes/hours/days/weeks/months/years, "times", "doses"; spellings and
abbreviations are normalised: mg = milligram(s), wk = week(s), mcg = µg, per cent = %). An answer's quantity is
supported when each of its values occurs in what the model was given (the question and the numbered passages with their file names and page labels: :func:`assistant.chat.answer.number_check_context`), and, where the answer gives a unit, occurs there with
the same unit or one convertible to it exactly (0.4 mg = 400 µg, 6 weeks = 42 days, 1 year = 12 months); a value
without a unit ("eight contacts") is supported by the value anywhere in the passages ("8 contacts", "eight").

**Ignored:** citation markers ``[n]``, list numbering at a line start (``1.``, ``2)``), ordinals ("first"), and
"one" when no unit follows it ("one of the most ..."), which is nearly always a pronoun or determiner.

**Limits.** It checks that the value (and unit) exists somewhere in the passages, not that it is attached to the
same drug, person or event: "60 mg of calcium" passes when the passages say "60 mg of iron". It does not read
rates ("daily" vs "weekly"), per-kg or concentration units ("15 mg/kg", "110 g/dL" are read as 15 mg and 110 g),
WHO's space-separated thousands ("100 000" reads as 100 and 0), comparisons ("more than 300 mg" vs "300 mg") or negation; a value written in words the
extractor does not know (fractions such as "half", "a dozen") is not checked. So it catches invented and changed
numbers, the commonest error of the small generator, and is a floor, not a proof of correctness.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NUMBER_CHECK_MODES = ("replace", "mark", "off")
"""``Settings.number_check``: replace an unsupported sentence by the quoted evidence, mark it, or skip the check."""

_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_TIMES = {"once": 1, "twice": 2, "thrice": 3}

#: spelling -> (canonical unit, factor to the unit's base: mg, ml, minute, month)
_UNITS: dict[str, tuple[str, float]] = {}
for _names, _unit, _factor in [
    (("mg", "milligram", "milligrams", "milligramme", "milligrammes"), "mass", 1.0),
    (("g", "gram", "grams", "gramme", "grammes", "gm"), "mass", 1000.0),
    (("kg", "kilogram", "kilograms", "kilo", "kilos"), "mass", 1e6),
    (("µg", "μg", "mcg", "ug", "microgram", "micrograms"), "mass", 1e-3),
    (("iu", "ius", "international unit", "international units", "units", "unit"), "iu", 1.0),
    (("ml", "millilitre", "millilitres", "milliliter", "milliliters"), "volume", 1.0),
    (("l", "litre", "litres", "liter", "liters"), "volume", 1000.0),
    (("%", "percent", "per cent"), "%", 1.0),
    (("min", "mins", "minute", "minutes"), "time", 1.0),
    (("h", "hr", "hrs", "hour", "hours"), "time", 60.0),
    (("day", "days"), "time", 1440.0),
    (("wk", "wks", "week", "weeks"), "time", 10080.0),
    (("month", "months", "mo"), "months", 1.0),
    (("year", "years", "yr", "yrs"), "months", 12.0),
    (("time", "times"), "times", 1.0),
    (("dose", "doses"), "doses", 1.0),
]:
    for _name in _names:
        _UNITS[_name] = (_unit, _factor)

_NUMBER_WORD = "|".join(sorted(_WORDS, key=len, reverse=True))
_NUM = rf"(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+|(?:{_NUMBER_WORD})(?:-(?:{_NUMBER_WORD}))?)"
_UNIT = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_QUANTITY = re.compile(
    rf"(?<![\w.])(?:between\s+)?(?P<a>{_NUM})(?:\s*(?P<ua>{_UNIT})(?!\w))?"
    rf"(?:\s*(?:–|—|-|to|and)\s*(?P<b>{_NUM}))?(?:\s*(?P<u>{_UNIT})(?![\w]))?(?![\w])"
    rf"|(?<!\w)(?P<t>once|twice|thrice)(?!\w)",
    re.IGNORECASE,
)
_CITATION = re.compile(r"\[\d{1,2}(?:\s*[,–-]\s*\d{1,2})*\]")
_LIST_NUMBER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s+")
_ORDINAL = re.compile(r"^\s*(?:st|nd|rd|th)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    """A quantity found in text.

    Attributes:
        text: as written, e.g. ``"30–60 mg"``.
        values: one value, or two for a range, in the written unit (``(30.0, 60.0)``).
        unit: canonical dimension (``"mass"``, ``"time"``, ``"months"``, ``"%"``, ``"iu"``, ``"volume"``,
            ``"times"``, ``"doses"``) or None when no known unit follows.
        factor: multiplier from the written unit to the dimension's base (mg, minute, month, ml); 1 without a unit.
    """

    text: str
    values: tuple[float, ...]
    unit: str | None = None
    factor: float = 1.0

    def base_values(self) -> tuple[float, ...]:
        """The values in the dimension's base unit (mg, ml, minutes, months)."""
        return tuple(v * self.factor for v in self.values)


@dataclass
class SentenceCheck:
    """The number check of one answer sentence: ``start``/``end`` are its character span in the checked text."""

    sentence: str
    start: int
    end: int
    quantities: list[Quantity] = field(default_factory=list)
    unsupported: list[Quantity] = field(default_factory=list)


def _value(token: str) -> float:
    token = token.lower()
    if "-" in token and not token[0].isdigit():
        return float(sum(_WORDS[w] for w in token.split("-")))
    if token in _WORDS:
        return float(_WORDS[token])
    return float(token.replace(",", ""))


def _unit(name: str | None) -> tuple[str | None, float]:
    if not name:
        return None, 1.0
    key = name.lower()
    return _UNITS.get(key, _UNITS.get(name, (None, 1.0)))


def extract_quantities(text: str) -> list[Quantity]:
    """Every quantity in ``text`` per the module's rule (citation markers and list numbering ignored).

    Returns:
        Quantities in order of appearance.
    """
    text = _LIST_NUMBER.sub(
        lambda m: " " * len(m.group()), _CITATION.sub(lambda m: " " * len(m.group()), text)
    )
    found = []
    for m in _QUANTITY.finditer(text):
        if m.group("t"):
            found.append(Quantity(m.group(), (float(_TIMES[m.group("t").lower()]),), "times"))
            continue
        if _ORDINAL.match(text[m.end() :]):
            continue
        a, b, ua, u = m.group("a"), m.group("b"), m.group("ua"), m.group("u")
        pair = b is not None and (
            (ua and u) or (" and " in m.group().lower() and not m.group().lower().startswith("between"))
        )
        if pair:  # "0.4 mg and 400 µg", "2 and 3": two quantities, each with its own unit
            parts = [
                (a, ua, m.group()[: m.end("ua") - m.start() if ua else m.end("a") - m.start()]),
                (b, u, ""),
            ]
            for token, name, written in parts:
                unit, factor = _unit(name)
                if token.lower() == "one" and unit is None:
                    continue
                found.append(
                    Quantity((written or f"{token} {name or ''}").strip(), (_value(token),), unit, factor)
                )
            continue
        unit, factor = _unit(u or ua)  # "30–60 mg" and "30 mg to 60" both carry mg
        if b is None and a.lower() == "one" and unit is None:
            continue  # "one of", "no one": a pronoun, not a quantity
        values = (_value(a),) if b is None else (_value(a), _value(b))
        found.append(Quantity(m.group().strip(), values, unit, factor))
    return found


def _index(passages: Iterable[str]) -> tuple[set[float], dict[str, set[float]]]:
    """Values anywhere in the passages, and per unit the base values stated with it."""
    values: set[float] = set()
    by_unit: dict[str, set[float]] = {}
    for text in passages:
        for q in extract_quantities(text):
            values.update(round(v, 6) for v in q.values)
            if q.unit:
                by_unit.setdefault(q.unit, set()).update(round(v, 6) for v in q.base_values())
    return values, by_unit


def is_supported(quantity: Quantity, passages: Sequence[str]) -> bool:
    """True when every value of ``quantity`` (with its unit, when it has one) occurs in ``passages``."""
    values, by_unit = _index(passages)
    return _supported(quantity, values, by_unit)


def _supported(quantity: Quantity, values: set[float], by_unit: dict[str, set[float]]) -> bool:
    if quantity.unit is None:
        return all(round(v, 6) in values for v in quantity.values)
    known = by_unit.get(quantity.unit, set())
    return all(round(v, 6) in known for v in quantity.base_values())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (Punkt, the splitter evidence uses), start and end offsets."""
    from assistant.rag.sentences import _punkt

    spans = []  # Punkt splits at . ! ? only: each line of a list is a sentence of its own too
    for start, end in _punkt().span_tokenize(text) if text.strip() else []:
        spans += [
            (start + m.start(), start + m.end()) for m in re.finditer(r"[^\n]*\S[^\n]*", text[start:end])
        ]
    return spans


def check_numbers(text: str, passages: Sequence[str]) -> list[SentenceCheck]:
    """Check every quantity of ``text`` (an answer) against ``passages`` (the texts given to the model).

    Returns:
        One :class:`SentenceCheck` per sentence of ``text`` that holds a quantity, in order.
    """
    values, by_unit = _index(passages)
    checks = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        quantities = extract_quantities(sentence)
        if quantities:
            bad = [q for q in quantities if not _supported(q, values, by_unit)]
            checks.append(SentenceCheck(sentence, start, end, quantities, bad))
    return checks
