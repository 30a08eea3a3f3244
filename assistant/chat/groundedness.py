"""Groundedness: the share of an answer's sentences that a passage given to the model supports.

    from assistant.chat.groundedness import groundedness
    score = groundedness(answer.text, passage_sentences, embedder)  # None without passages

An answer sentence is supported when its best cosine similarity (all-MiniLM-L6-v2, unit vectors) to any sentence
of the passages it cites (all passages given to the model when it cites none) is at least
:data:`SUPPORT_THRESHOLD`. Only the model's own words are scored: notices and quoted evidence are not, and
sentences of fewer than three words ("Yes.") are left out. Embedding similarity says the sentence is about what a
source says, not that it agrees with it (negation and changed numbers score high: the number check,
:mod:`assistant.chat.numbers`, covers the latter). An NLI model would judge entailment, but none ships offline here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assistant.chat.evidence import PassageSentences, embed, split_sentences

SUPPORT_THRESHOLD = 0.69
"""Best-sentence cosine at or above which a sentence counts as supported. Calibrated on K-QA (201 questions, 892
physician "must have" statements; not an evaluation set of ours) by
``LLAMA_MD_DATA_DIR=../shared python -m benchmarks.groundedness_calibration --seed 0``: statement vs its own
physician answer (supported) against statement vs the most similar other question's answer (not supported):
ROC AUC 0.932, balanced accuracy 0.872 at 0.690, the threshold that maximises it. Against a random other answer
the AUC is 0.997 and the best threshold 0.530; the chat's unsupported sentences are on the passages' topic, so the
harder pairing sets the bar."""
LOW_GROUNDEDNESS = 0.5
"""Below this share of supported sentences the answer is flagged ``low_groundedness`` and says so
(:data:`LOW_NOTICE`): fewer than half of its sentences match anything in its sources."""
LOW_NOTICE = "This answer is only partly supported by the sources: rely on the quoted evidence, which is what they say."


def support_scores(claims: Sequence[str], sentences: Sequence[str], embedder) -> np.ndarray:
    """Best cosine similarity of each claim to any of ``sentences``, shape ``(len(claims),)``; -1 without sentences."""
    if not claims:
        return np.zeros(0, dtype=np.float32)
    if not sentences:
        return np.full(len(claims), -1.0, dtype=np.float32)
    vectors = embed(list(claims) + list(sentences), embedder)
    return (vectors[: len(claims)] @ vectors[len(claims) :].T).max(axis=1)


def groundedness(
    text: str,
    sentences: PassageSentences,
    embedder,
    cited: Sequence[int] = (),
    *,
    threshold: float = SUPPORT_THRESHOLD,
) -> float | None:
    """Share in [0, 1] of the sentences of ``text`` (the model's words) supported by the passages ``cited``
    (markers, 1-based; all of ``sentences`` when empty). None when there are no passage sentences or no answer
    sentence of three or more words."""
    claims = [s for s in split_sentences(text) if len(s.split()) >= 3]
    support = sentences.of_passages(cited) if cited else sentences.sentences
    if not claims or not support:
        return None
    return float(np.mean(support_scores(claims, support, embedder) >= threshold))
