"""The triage classifier with its embedder fine-tuned: all-MiniLM-L6-v2 plus one softmax head, end to end.

Why: a logistic head on frozen all-MiniLM-L6-v2 embeddings separates emergencies from their look-alikes poorly
(validation AUC 0.94; at sensitivity 0.98 a third of routine look-alikes are flagged): sentence embeddings put "had
a stroke in 2019" next to "he is having a stroke". Fine-tuning the sentence-transformer on the labels, as SetFit does
(Tunstall et al. 2022, arXiv 2209.11055) but with a classification loss instead of SetFit's contrastive pairs (ten
times fewer forward passes on this 2-core CPU), teaches it tense, negation and who is affected.
``benchmarks/safety_heads.py`` compares the three on the validation split (docs/results.md, red-flag triage).

Model: the embedder's mean-pooled, L2-normalized sentence embedding ``(B, 384)`` -> linear layer -> ``(B, K + 1)``
logits over "routine" and the K categories (emergency and urgent, :mod:`.categories`), scaled by :data:`SCALE` (a
cosine classifier). A level's probability is the softmax mass of its categories: ``p_emergency`` sums the emergency
categories, ``p_alarm`` the emergency and urgent ones (``1 - p(routine)``); a text is an emergency when
``p_emergency >= thresholds["emergency"]``, else urgent when ``p_alarm >= thresholds["urgent"]`` (both chosen on
the validation split, :func:`.classifier.pick_thresholds`). Summing a level's mass keeps a message that is split
between two emergency categories ("chest pain and can't breathe") an emergency.

Storage: the fine-tuned sentence-transformer is saved with ``save_pretrained`` (safetensors) and the head as
``head.safetensors`` with the labels and thresholds in ``classifier.json``; nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ROUTINE = "routine"
SCALE = 20.0  # logit scale on unit-norm embeddings (cosine classifier), as in NormFace (Wang et al. 2017)
EPOCHS = 3
BATCH_SIZE = 32
LR_BODY, LR_HEAD = 5e-5, 2e-3
MAX_SEQ_LENGTH = 128  # tokens; messages longer than this are read by their beginning


@dataclass
class Prediction:
    """Per-text classifier output for ``n`` texts.

    ``p_emergency`` ``(n,)``: softmax mass of the emergency categories; ``p_alarm`` ``(n,)``: mass of emergency and
    urgent categories (``1 - p(routine)``); ``emergency_category`` / ``alarm_category``: the most likely emergency
    category, and the most likely non-routine category, per text.
    """

    p_emergency: np.ndarray
    p_alarm: np.ndarray
    emergency_category: list[str]
    alarm_category: list[str]


class FinetunedClassifier:
    """A fine-tuned sentence-transformer plus a linear head (see the module docstring).

    Args:
        model: a ``SentenceTransformer`` whose output ends in Normalize. head: ``torch.nn.Linear(d, K + 1)``.
        labels: ``K + 1`` names, ``labels[0] == "routine"``, the rest category ids (:mod:`.categories`).
        thresholds: ``{"emergency": t_e, "urgent": t_u}`` (see the module docstring; a float sets both, as the
            one-level classifiers saved before graded urgency did).
    """

    def __init__(self, model, head, labels: list[str], thresholds=0.5, meta: dict | None = None):
        from .categories import URGENT, level_of

        self.model, self.head, self.labels = model, head, labels
        if not isinstance(thresholds, dict):
            thresholds = {"emergency": float(thresholds), "urgent": float(thresholds)}
        self.thresholds = dict(thresholds)
        self.meta = meta or {}
        # a label missing from the table (a model saved before a category was renamed) counts as an emergency
        self._emergency = np.array([i > 0 and level_of(c) != URGENT for i, c in enumerate(labels)])

    @property
    def threshold(self) -> float:
        """The emergency threshold (``thresholds["emergency"]``)."""
        return self.thresholds["emergency"]

    @property
    def categories(self) -> list[str]:
        return self.labels[1:]

    def logits(self, texts: list[str]):
        """``(B, K + 1)`` logits for ``B`` texts (a torch tensor; gradients follow the model's mode)."""
        features = self.model.preprocess(texts)
        emb = self.model(features)["sentence_embedding"]
        return self.head(emb) * SCALE

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """``(n, K + 1)`` softmax probabilities. Texts run shortest first, in batches of at most
        :data:`BATCH_SIZE` whose longest text is at most twice the shortest: a batch pads to its longest text, so
        a long message read whole does not make its short sentences 128 tokens wide."""
        import torch

        self.model.eval()
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for idx in _like_lengths([len(texts[i]) for i in order], order):
                logits = self.logits([texts[i] for i in idx]).float()
                out[idx] = torch.softmax(logits, dim=-1).numpy()
        return out

    def predict(self, texts: list[str]) -> Prediction:
        """Level probabilities and categories per text (:class:`Prediction`)."""
        probs = self.probabilities(texts)
        em = np.where(self._emergency, probs, 0.0)
        alarm = probs.copy()
        alarm[:, 0] = 0.0
        return Prediction(
            em.sum(axis=1),
            1.0 - probs[:, 0],
            [self.labels[int(i)] for i in em.argmax(axis=1)],
            [self.labels[int(i)] for i in alarm.argmax(axis=1)],
        )

    def predict_texts(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        """Emergency probabilities ``(n,)`` and the most likely emergency category per text."""
        pred = self.predict(texts)
        return pred.p_emergency, pred.emergency_category

    def save(self, folder: Path) -> None:
        """Write the model (safetensors), ``head.safetensors`` and ``classifier.json`` into ``folder``."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder / "embedder"), safe_serialization=True)
        save_file(
            {k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors")
        )
        info = {"labels": self.labels, "thresholds": self.thresholds, "scale": SCALE, "meta": self.meta}
        (folder / "classifier.json").write_text(json.dumps(info, indent=1))

    @classmethod
    def from_folder(cls, folder: Path, device: str = "cpu") -> FinetunedClassifier:
        """Load what :meth:`save` wrote (safetensors and JSON only)."""
        import torch
        from safetensors.torch import load_file
        from sentence_transformers import SentenceTransformer

        info = json.loads((folder / "classifier.json").read_text())
        model = SentenceTransformer(str(folder / "embedder"), device=device)
        state = load_file(str(folder / "head.safetensors"))
        head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
        head.load_state_dict(state)
        thresholds = info.get("thresholds", info.get("threshold", 0.5))
        return cls(model, head.eval(), info["labels"], thresholds, info.get("meta"))


def _like_lengths(lengths: list[int], order: np.ndarray) -> list[np.ndarray]:
    """Cut ``order`` (indices sorted by ascending ``lengths``) into batches of at most :data:`BATCH_SIZE` whose
    longest is at most twice the shortest (plus 40 characters, so short texts stay together)."""
    batches, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or i - start >= BATCH_SIZE or lengths[i] > 2 * lengths[start] + 40:
            batches.append(order[start:i])
            start = i
    return batches


def length_grouped_batches(lengths: np.ndarray, rng, group: int = 16) -> list[np.ndarray]:
    """One epoch's batches: shuffle, sort each run of ``group`` batches by length, cut it into batches of
    :data:`BATCH_SIZE`, shuffle the batches (the "group by length" sampler of Hugging Face's Trainer). A batch pads
    to its longest text, so batches of like lengths spend less time on padding; the long messages with a buried
    sign no longer make every batch 128 tokens wide.

    Args:
        lengths: ``(n,)`` text lengths (characters). rng: a numpy Generator.

    Returns:
        Index arrays covering ``range(n)`` once each.
    """
    order = rng.permutation(len(lengths))
    span = BATCH_SIZE * group
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + BATCH_SIZE] for i in range(0, len(chunk), BATCH_SIZE)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_finetuned(
    embedder_dir: str,
    texts: list[str],
    labels: list[str],
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    log_every: int = 20,
) -> FinetunedClassifier:
    """Fine-tune a fresh copy of the embedder plus a head on ``texts`` with labels "routine" or a category id.

    Cross-entropy over K + 1 classes, AdamW (body ``LR_BODY``, head ``LR_HEAD``), linear warm-up over 10% of the
    steps then linear decay, ``BATCH_SIZE`` messages a step in length-grouped batches
    (:func:`length_grouped_batches`). On 2 CPU cores ~3,000 messages x 3 epochs take a few minutes
    (docs/results.md).
    """
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    model = SentenceTransformer(embedder_dir, device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    names = [ROUTINE] + sorted({lab for lab in labels if lab != ROUTINE})
    index = {n: i for i, n in enumerate(names)}
    y = torch.tensor([index[lab] for lab in labels])
    dim = model.get_embedding_dimension()
    head = torch.nn.Linear(dim, len(names))
    clf = FinetunedClassifier(model, head, names)
    steps = epochs * math.ceil(len(texts) / BATCH_SIZE)
    opt = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": LR_BODY}, {"params": head.parameters(), "lr": LR_HEAD}],
        weight_decay=0.01,
    )
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    rng = np.random.default_rng(seed)
    lengths = np.array([len(t) for t in texts])
    model.train()
    step, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in length_grouped_batches(lengths, rng):
            loss = torch.nn.functional.cross_entropy(clf.logits([texts[i] for i in batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % log_every == 0 or step == steps:
                logger.info("red-flag fine-tune step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(),
                            time.perf_counter() - t0)  # fmt: skip
    model.eval()
    head.eval()
    return clf
