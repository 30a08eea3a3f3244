"""The cross-encoder re-ranker on the answer path: passages before the prompt, sentences for the quotes.

A cross-encoder reads the question and a passage together (one transformer pass per pair), so it can tell a
passage that *answers* the question from one that only shares its words -- what a bi-encoder's cosine and BM25
cannot (Nogueira & Cho 2019, "Passage Re-ranking with BERT"; MedCPT's re-ranker, Jin et al. 2023). The model is
trained here (:mod:`assistant.rag.trained`); ``settings.rerank`` switches it on or off and
``settings.reranker_model`` names it.

    from assistant.rag.rerank import load_reranker
    reranker = load_reranker(settings)          # None when rerank = off
    p = reranker.scores("iron in pregnancy?", ["passage one", "passage two"])   # (2,) probabilities
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np

from assistant import torch_thread
from assistant.config import Settings

logger = logging.getLogger(__name__)

CANDIDATES = 20
"""Fused candidates (one per page) the re-ranker reads before the prompt's ``top_k`` are kept."""
BATCH_SIZE = 32


class Reranker:
    """A sentence-transformers ``CrossEncoder`` whose output is one relevance logit per (question, text) pair.

    Args:
        model: the loaded CrossEncoder (``num_labels=1``).
        name: what it was loaded from, for logs and ``doctor``.
    """

    def __init__(self, model, name: str = "") -> None:
        self.model, self.name = model, name

    def scores(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """Relevance probabilities, shape ``(len(texts),)`` float32, in input order: ``CrossEncoder.predict``
        with its default activation for one label, the sigmoid of the logit; computed on the torch thread
        (:mod:`assistant.torch_thread`)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pairs = [(question, t) for t in texts]
        probs = torch_thread.run(
            self.model.predict, pairs, batch_size=BATCH_SIZE, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(probs, dtype=np.float32).reshape(-1)

    def rerank(self, question: str, hits: Sequence, top_k: int) -> list:
        """``hits`` ordered by relevance, best first, at most ``top_k``; each returned hit is a copy with
        ``rerank`` set to its probability (its ``score`` stays the cosine, so ``min_score`` keeps its meaning)."""
        probs = self.scores(question, [h.text for h in hits])
        order = np.argsort(-probs, kind="stable")[:top_k]
        return [replace(hits[i], rerank=float(probs[i])) for i in order]


@lru_cache(maxsize=2)
def _load(path: str, device: str) -> Reranker:
    """Load once per process; bf16 weights on CPUs with native bf16 (AVX512-BF16 / AMX: re-ranking 20 passages
    took 1.0 s instead of 2.3 s on this 2-core CPU under load; ``CrossEncoder.predict`` returns float32)."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from assistant.models import default_dtype

    model = CrossEncoder(path, device=device)
    if default_dtype(device) == "bfloat16":
        model.model.to(torch.bfloat16)
    return Reranker(model, path)


def load_reranker(settings: Settings) -> Reranker | None:
    """The settings' re-ranker, loaded once per process; None when ``rerank = off``, or ``auto`` without a built
    re-ranker (logged once).

    Raises:
        TrainedModelError: ``rerank = on`` with the trained re-ranker never built here (names the command).
    """
    from assistant.models import TRAINED_RERANKER, TrainedModelError, default_device, trained_model_dir

    if settings.rerank == "off":
        return None
    name = settings.reranker_model
    try:
        path = str(trained_model_dir(name)) if name == TRAINED_RERANKER else name
    except TrainedModelError as exc:
        if settings.rerank == "on":
            raise
        _warn_once(str(exc))
        return None
    return torch_thread.run(_load, path, default_device())


@lru_cache(maxsize=1)
def _warn_once(why: str) -> None:
    logger.warning("Re-ranking is off (rerank = auto): %s", why)
