"""The red-flag classifier with its embedder fine-tuned: all-MiniLM-L6-v2 plus one softmax head, end to end.

Why: a logistic head on frozen all-MiniLM-L6-v2 embeddings separates emergencies from their look-alikes poorly
(validation AUC 0.94; at sensitivity 0.98 a third of routine look-alikes are flagged): sentence embeddings put "had
a stroke in 2019" next to "he is having a stroke". Fine-tuning the sentence-transformer on the labels, as SetFit does
(Tunstall et al. 2022, arXiv 2209.11055) but with a classification loss instead of SetFit's contrastive pairs (ten
times fewer forward passes on this 2-core CPU), teaches it tense, negation and who is affected.
``benchmarks/safety_heads.py`` compares the three on the validation split (docs/results.md, red-flag triage).

Model: the embedder's mean-pooled, L2-normalized sentence embedding ``(B, 384)`` -> linear layer -> ``(B, K + 1)``
logits over "routine" and the K emergency categories, scaled by :data:`SCALE` (a cosine classifier). The emergency
probability is ``1 - softmax(logits)[routine]``; the category is the argmax over the K emergency classes.

Storage: the fine-tuned sentence-transformer is saved with ``save_pretrained`` (safetensors) and the head as
``head.safetensors`` with the labels and threshold in ``classifier.json``; nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ROUTINE = "routine"
SCALE = 20.0  # logit scale on unit-norm embeddings (cosine classifier), as in NormFace (Wang et al. 2017)
EPOCHS = 3
BATCH_SIZE = 32
LR_BODY, LR_HEAD = 5e-5, 2e-3
MAX_SEQ_LENGTH = 128  # tokens; messages longer than this are read by their beginning


class FinetunedClassifier:
    """A fine-tuned sentence-transformer plus a linear head (see the module docstring).

    Args:
        model: a ``SentenceTransformer`` whose output ends in Normalize. head: ``torch.nn.Linear(d, K + 1)``.
        labels: ``K + 1`` names, ``labels[0] == "routine"``. threshold: emergency when probability >= threshold.
    """

    def __init__(self, model, head, labels: list[str], threshold: float = 0.5, meta: dict | None = None):
        self.model, self.head, self.labels, self.threshold = model, head, labels, threshold
        self.meta = meta or {}

    @property
    def categories(self) -> list[str]:
        return self.labels[1:]

    def logits(self, texts: list[str]):
        """``(B, K + 1)`` logits for ``B`` texts (a torch tensor; gradients follow the model's mode)."""
        features = self.model.preprocess(texts)
        emb = self.model(features)["sentence_embedding"]
        return self.head(emb) * SCALE

    def predict_texts(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        """Emergency probabilities ``(n,)`` and the most likely emergency category per text."""
        import torch

        self.model.eval()
        with torch.inference_mode():
            probs = torch.softmax(self.logits(list(texts)).float(), dim=-1).numpy()
        cats = [self.labels[1 + int(i)] for i in probs[:, 1:].argmax(axis=1)]
        return 1.0 - probs[:, 0], cats

    def save(self, folder: Path) -> None:
        """Write the model (safetensors), ``head.safetensors`` and ``classifier.json`` into ``folder``."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder / "embedder"), safe_serialization=True)
        save_file(
            {k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors")
        )
        info = {"labels": self.labels, "threshold": self.threshold, "scale": SCALE, "meta": self.meta}
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
        return cls(model, head.eval(), info["labels"], info["threshold"], info.get("meta"))


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
    steps then linear decay, ``BATCH_SIZE`` messages a step. On 2 CPU cores ~2,000 messages x 3 epochs take a few
    minutes (docs/results.md).
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
    model.train()
    step, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
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
