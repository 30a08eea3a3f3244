"""Answer-quality metrics: ROUGE-L, embedding similarity, must-have coverage, answer parsers, run-on turns.

Every function takes plain strings (or lists of them) so it can be checked on hand-made inputs:

- ROUGE-L F1 (Lin 2004) through the ``rouge-score`` package (Google Research's reference implementation, the one
  the BLEU/ROUGE comparisons of medical fine-tunes use), with its Porter stemmer.
- Semantic similarity: cosine similarity of the bundled sentence embedder's vectors (all-MiniLM-L6-v2, 384-d,
  normalized), answer vs reference.
- K-QA must-have coverage: K-QA scores "comprehensiveness" as the share of must-have statements *entailed* by the
  answer, judged by an NLI model (Manes et al. 2024, arXiv:2401.14493). No maintained NLI model can be had
  offline here, so a statement counts as covered when some sentence of the answer (or the whole answer) has
  cosine similarity >= ``COVERAGE_THRESHOLD`` with it under the same embedder — a looser proxy for entailment
  (it can't see negation) and stated as such in the report.
- Closed-question parsers: the letter chosen in free text ("The answer is B", "(C)", "Yes.", "no, because ...").
- Run-on turns: an answer that goes on past its end into invented follow-up turns ("Patient: ...",
  "Hi doctor, ...") — the failure reported for small ChatDoctor-style fine-tunes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

#: Cosine similarity a must-have statement needs with some answer sentence to count as covered. Calibrated on
#: K-QA (40 questions, seed 0): physicians' own answers cover 99% of their must-haves at 0.6, another question's
#: answer 0%. The proxy still rewards naming the right topic: "Escitalopram may cause headache" scores 0.71 with
#: "Side effects of escitalopram include nausea" under all-MiniLM-L6-v2, so read it as topical coverage.
COVERAGE_THRESHOLD = 0.6

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

# ---------------------------------------------------------------------------------------------------------------
# Overlap and similarity


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference`` in [0, 1] (1 = identical token sequences after stemming).

    Empty prediction or reference scores 0.
    """
    from rouge_score import rouge_scorer

    if not prediction.strip() or not reference.strip():
        return 0.0
    scorer = _scorer(rouge_scorer)
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)


_SCORER = None


def _scorer(rouge_scorer):
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _SCORER


def embed(texts: Sequence[str], embedder):
    """Normalized embeddings of ``texts``: array of shape (N, D) (D = 384 for the bundled embedder)."""
    return embedder.encode(
        list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def semantic_similarity(predictions: Sequence[str], references: Sequence[str], embedder) -> list[float]:
    """Cosine similarity of each prediction with its reference, in [-1, 1]; an empty prediction scores 0.

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references; expected equal.")
    if not predictions:
        return []
    a, b = embed(predictions, embedder), embed(references, embedder)
    return [float(x @ y) if p.strip() else 0.0 for x, y, p in zip(a, b, predictions, strict=True)]


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (at . ! ? followed by space, and at line breaks); empty pieces dropped."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def must_have_coverage(
    answer: str, statements: Sequence[str], embedder, threshold: float = COVERAGE_THRESHOLD
) -> float:
    """Share of ``statements`` covered by ``answer`` (see the module docstring), in [0, 1].

    A statement is covered when its cosine similarity with the whole answer or any of its sentences is at least
    ``threshold``. No statements -> 1.0 (nothing was required); an empty answer covers nothing.
    """
    if not statements:
        return 1.0
    pieces = sentences(answer)
    if not pieces:
        return 0.0
    pieces = [answer.strip(), *pieces]
    sims = embed(list(statements), embedder) @ embed(pieces, embedder).T  # (S, P)
    return float((sims.max(axis=1) >= threshold).mean())


# ---------------------------------------------------------------------------------------------------------------
# Closed questions

_ANSWER_IS = re.compile(
    r"\b(?:answer|option|choice|response)\s*(?:is|would be|:)?\s*:?\s*\(?((?-i:[A-Z]))\b(?![\w'])",
    re.IGNORECASE,
)
_LEADING_LETTER = re.compile(r"^\W{0,3}\(?([A-Z])(?:\)|\.|:|,|\s*$|\s+[-–])")
_WORD_ANSWER = re.compile(r"\b(?:answer|response)\s*(?:is|:)\s*:?\s*\W{0,2}([a-z]+)", re.IGNORECASE)


def parse_choice(text: str, options: Mapping[str, str]) -> str | None:
    """The option letter an answer chooses, or None when it can't be read.

    Reads, in order: "the answer is B" / "option (B)" / "Answer: B"; a leading letter ("B.", "(B)", "B)");
    "the answer is yes"; a leading option text ("Yes.", "no, because...", "Maybe"); an option's full text when
    exactly one option's text appears in the first sentence.

    Args:
        text: the generated answer.
        options: letter -> option text, e.g. ``{"A": "yes", "B": "no", "C": "maybe"}``.

    Returns:
        A key of ``options`` or None.
    """
    text = (text or "").strip()
    if not text:
        return None
    letters = {k.upper(): k for k in options}
    by_text = {v.strip().lower().rstrip("."): k for k, v in options.items()}
    match = _ANSWER_IS.search(text)
    if match and match.group(1).upper() in letters:
        return letters[match.group(1).upper()]
    match = _LEADING_LETTER.match(text)
    if match and match.group(1).upper() in letters:
        return letters[match.group(1).upper()]
    match = _WORD_ANSWER.search(text)
    if match and match.group(1).lower() in by_text:
        return by_text[match.group(1).lower()]
    lowered = text.lower()
    for option_text, key in sorted(by_text.items(), key=lambda kv: -len(kv[0])):
        if option_text and re.match(rf"\W{{0,3}}{re.escape(option_text)}\b", lowered):
            return key
    first = sentences(lowered)[0]
    found = {key for option_text, key in by_text.items() if len(option_text) > 3 and option_text in first}
    return found.pop() if len(found) == 1 else None


# ---------------------------------------------------------------------------------------------------------------
# Generation behaviour

_TURN_LABEL = re.compile(
    r"(?:^|\n|[.!?]\s+)\W{0,4}(?:patient|user|human|doctor|chat\s?doctor|assistant|question|q|a|answer|response|"
    r"input|output|instruction)\s*:",
    re.IGNORECASE,
)
_PATIENT_VOICE = re.compile(
    r"\b(?:hi|hello|hey|dear|thanks?|thank you)[, ]+doctor\b|(?:^|[.!?\n]\s*)doctor,\s+(?:i|my)\b"
    r"|<\|?(?:im_start|user|human)",
    re.IGNORECASE,
)


def runs_on(text: str) -> bool:
    """True when ``text`` goes on into an invented follow-up turn after its own first words.

    Signs, anywhere after some text of the answer itself (a leading "Answer:" label is part of the first turn):
    a speaker label starting a line or sentence ("Patient:", "User:", "Doctor:", "Q:", "### Question:"), a
    patient addressing the doctor ("Hi doctor", "Thanks doctor", a sentence opening "Doctor, I ..."), or a
    leaked chat-template role marker.
    """
    text = text or ""
    for pattern in (_TURN_LABEL, _PATIENT_VOICE):
        for match in pattern.finditer(text):
            if text[: match.start()].strip(" \n.!?#*"):
                return True
    return False


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, None for an empty list (reported as "n/a", never as 0)."""
    return float(sum(values) / len(values)) if values else None


def share(flags: Sequence[bool]) -> float | None:
    """Fraction of True values in [0, 1]; None for an empty list."""
    return mean([1.0 if f else 0.0 for f in flags])


def majority_share(labels: Sequence[str]) -> float | None:
    """Accuracy of always answering the most frequent label of ``labels`` (the majority-answer baseline)."""
    if not labels:
        return None
    return max(labels.count(label) for label in set(labels)) / len(labels)
