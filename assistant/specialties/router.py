"""Question -> specialty: frozen MiniLM sentence embeddings and a trained linear softmax head, calibrated.

Model: the project's embedder (:func:`assistant.models.load_embedder`, all-MiniLM-L6-v2, mean-pooled and
L2-normalized, ``(B, 384)``) -> ``logits = x @ W.T + b`` ``(B, K)`` over the K = 31 taxonomy classes ->
``softmax(logits / T)``. The embedder is not fine-tuned: one forward pass is shared by every class and the head
trains in seconds.

Training (:func:`train_router`, on :mod:`.examples`): the loss is the negative log of the probability the head puts
on a row's ``accept`` set (a set-valued gold: a prediction anywhere in the set is right), weighted so that every
class weighs the same and a patient question ``PATIENT_WEIGHT`` times a silver row; L2 ``L2`` on W; Adam, full
batch, ``STEPS`` steps. Then, on the patient questions' validation split only (the target wording):

* temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): the ``T`` in
  ``TEMPERATURES`` with the lowest negative log-likelihood of the accept set;
* the "unsure" threshold: the top-1 probability below which, on validation, the router is more often wrong than
  right (the ``t`` that maximises correct minus wrong among the predictions with ``p >= t``).

Storage: ``head.safetensors`` (W, b) and ``router.json`` (labels, T, threshold, training report) in a cache folder
named by the fingerprint of the training files, the embedder and these settings (:func:`model_dir`); nothing
pickled. ``llama-md specialty train`` (run by ``make setup``) builds it; the first :func:`load_router` builds it
when missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .examples import (
    PATIENT_FILE,
    Example,
    read_questions,
    silver_slice,
    source_files,
    split_patient,
)
from .taxonomy import get_specialty, slugs

logger = logging.getLogger(__name__)

PATIENT_WEIGHT = 8.0  # a patient question weighs this many silver rows (before class balancing)
L2 = 1e-4
STEPS = 400
LR = 0.05
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))
TOP_K = 3

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class Prediction:
    """One routed question: ``specialty`` is always the most probable class (also when ``unsure``)."""

    question: str
    specialty: str
    name: str
    p: float
    top3: list[tuple[str, float]]
    unsure: bool

    def to_json(self) -> dict:
        """``{question, specialty, name, p, top3: [[slug, p], ...], unsure}`` (probabilities to 4 digits)."""
        return {
            "question": self.question,
            "specialty": self.specialty,
            "name": self.name,
            "p": round(self.p, 4),
            "top3": [[s, round(p, 4)] for s, p in self.top3],
            "unsure": self.unsure,
        }


class Router:
    """A linear softmax head over sentence embeddings, with its temperature and unsure threshold.

    Args:
        weight: ``(K, d)``; bias: ``(K,)``; labels: the K slugs in row order.
        temperature: logits are divided by it before the softmax. threshold: ``unsure`` when top-1 p < it.
        embed: ``callable(list[str]) -> (n, d)`` L2-normalized embeddings (set by :func:`load_router`).
    """

    def __init__(
        self, weight, bias, labels: list[str], temperature=1.0, threshold=0.0, meta=None, embed=None
    ):
        self.weight, self.bias = np.asarray(weight, np.float32), np.asarray(bias, np.float32)
        self.labels, self.temperature, self.threshold = list(labels), float(temperature), float(threshold)
        self.meta, self.embed = meta or {}, embed

    def probabilities(self, embeddings: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """``(n, K)`` class probabilities for ``(n, d)`` embeddings (calibrated unless ``temperature`` given)."""
        logits = (embeddings @ self.weight.T + self.bias) / (temperature or self.temperature)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, questions: Sequence[str]) -> list[Prediction]:
        """Route each question: class, probability, top-3 and ``unsure`` (see :class:`Prediction`)."""
        if not questions:
            return []
        probs = self.probabilities(np.asarray(self.embed(list(questions)), np.float32))
        return [self._prediction(q, p) for q, p in zip(questions, probs, strict=True)]

    def _prediction(self, question: str, p: np.ndarray) -> Prediction:
        order = np.argsort(-p, kind="stable")[:TOP_K]
        top = [(self.labels[i], float(p[i])) for i in order]
        best, p_best = top[0]
        return Prediction(question, best, get_specialty(best).name, p_best, top, p_best < self.threshold)

    def save(self, folder: Path) -> None:
        """Write ``head.safetensors`` and ``router.json`` into ``folder``."""
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight, "bias": self.bias}, str(folder / "head.safetensors"))
        info = {"labels": self.labels, "temperature": self.temperature, "threshold": self.threshold}
        (folder / "router.json").write_text(json.dumps({**info, "meta": self.meta}, indent=1))

    @classmethod
    def from_folder(cls, folder: Path, embed: Embed | None = None) -> Router:
        """Load what :meth:`save` wrote (safetensors and JSON only)."""
        from safetensors.numpy import load_file

        info = json.loads((Path(folder) / "router.json").read_text())
        state = load_file(str(Path(folder) / "head.safetensors"))
        return cls(state["weight"], state["bias"], info["labels"], info["temperature"], info["threshold"],
                   info.get("meta"), embed)  # fmt: skip


def accept_mask(rows: Sequence[Example], labels: list[str]) -> np.ndarray:
    """``(n, K)`` booleans: True where the class is in the row's ``accept`` set."""
    index = {s: i for i, s in enumerate(labels)}
    mask = np.zeros((len(rows), len(labels)), dtype=bool)
    for i, row in enumerate(rows):
        mask[i, [index[a] for a in row.accept]] = True
    return mask


def class_weights(rows: Sequence[Example]) -> np.ndarray:
    """``(n,)`` row weights: patient rows ``PATIENT_WEIGHT``, silver 1, then each primary class scaled to the same
    total; mean 1."""
    raw = np.array([PATIENT_WEIGHT if r.source == "patient" else 1.0 for r in rows])
    totals: dict[str, float] = {}
    for r, w in zip(rows, raw, strict=True):
        totals[r.label] = totals.get(r.label, 0.0) + w
    w = raw / np.array([totals[r.label] for r in rows])
    return w / w.mean()


def fit_head(
    x: np.ndarray, mask: np.ndarray, weights: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fit W ``(K, d)`` and b ``(K,)`` by minimising the weighted ``-log p(accept set)`` + ``L2 * |W|^2``.

    Args:
        x: ``(n, d)`` embeddings; mask: ``(n, K)`` accept sets; weights: ``(n,)``.
    """
    import torch

    torch.manual_seed(seed)
    xt, mt, wt = torch.from_numpy(x).float(), torch.from_numpy(mask), torch.from_numpy(weights).float()
    head = torch.nn.Linear(x.shape[1], mask.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=LR)
    for step in range(STEPS):
        logits = head(xt)
        nll = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~mt, -1e9), 1)
        loss = (wt * nll).mean() + L2 * head.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            logger.info("specialty head step %d/%d loss %.4f", step + 1, STEPS, loss.item())
    return head.weight.detach().numpy(), head.bias.detach().numpy()


def set_nll(probs: np.ndarray, mask: np.ndarray) -> float:
    """Mean ``-log`` of the probability on each row's accept set."""
    return float(-np.mean(np.log(np.clip((probs * mask).sum(axis=1), 1e-12, None))))


def pick_temperature(router: Router, x: np.ndarray, mask: np.ndarray) -> float:
    """The temperature in ``TEMPERATURES`` with the lowest accept-set NLL on ``(x, mask)``."""
    losses = [set_nll(router.probabilities(x, t), mask) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def pick_threshold(p_top: np.ndarray, correct: np.ndarray) -> float:
    """The ``t`` among the observed top-1 probabilities that maximises (correct - wrong) among ``p >= t``.

    Args:
        p_top: ``(n,)`` top-1 probabilities; correct: ``(n,)`` booleans (top-1 in the accept set).
    """
    order = np.argsort(-p_top, kind="stable")
    net = np.cumsum(np.where(correct[order], 1, -1))
    return float(p_top[order][int(np.argmax(net))])


def train_router(embed: Embed, data_dir: Path | None, patient_file: Path = PATIENT_FILE, seed: int = 0):
    """Train, calibrate and report (see the module docstring for the method).

    Args:
        embed: ``callable(list[str]) -> (n, d)`` L2-normalized embeddings.
        data_dir: folder with ``specialties/*.csv`` (silver sets; skipped when absent).

    Returns:
        ``(router, report)``: report has split sizes per source, temperature, threshold, top-1 / top-3 / unsure
        rate / NLL on the patient questions' validation split, and seconds.
    """
    t0 = time.perf_counter()
    labels = slugs()
    patient = read_questions(patient_file)
    x_patient = np.asarray(embed([r.text for r in patient]), np.float32)
    tr, va = split_patient(patient, x_patient, seed)
    silver_train = silver_slice(data_dir, "train", seed)
    rows = [patient[i] for i in tr] + [r for part in silver_train.values() for r in part]
    x = np.concatenate([x_patient[tr], _embed_rows(embed, rows[len(tr) :])])
    weight, bias = fit_head(x, accept_mask(rows, labels), class_weights(rows), seed)
    router = Router(weight, bias, labels)
    val_rows, x_val = [patient[i] for i in va], x_patient[va]
    mask_val = accept_mask(val_rows, labels)
    router.temperature = pick_temperature(router, x_val, mask_val)
    probs = router.probabilities(x_val)
    correct = mask_val[np.arange(len(va)), probs.argmax(axis=1)]
    router.threshold = pick_threshold(probs.max(axis=1), correct)
    top3 = np.take_along_axis(mask_val, np.argsort(-probs, axis=1)[:, :TOP_K], axis=1).any(axis=1)
    report = {
        "train": {"patient": len(tr), **{k: len(v) for k, v in silver_train.items()}},
        "validation": {"patient": len(va)},
        "temperature": round(router.temperature, 3),
        "threshold": round(router.threshold, 4),
        "val_top1": round(float(correct.mean()), 4),
        "val_top3": round(float(top3.mean()), 4),
        "val_unsure_rate": round(float((probs.max(axis=1) < router.threshold).mean()), 4),
        "val_nll": round(set_nll(probs, mask_val), 4),
    }
    report["seconds"] = round(time.perf_counter() - t0, 1)
    router.meta = {"training_files": [p.name for p in source_files(data_dir, patient_file)], **report}
    logger.info("specialty router trained: %s", report)
    return router, report


def _embed_rows(embed: Embed, rows: Sequence[Example]) -> np.ndarray:
    if not rows:
        return np.zeros((0, 384), np.float32)
    return np.asarray(embed([r.text for r in rows]), np.float32)


def fingerprint(files: Sequence[Path], embedder_name: str) -> str:
    """sha256 over the training files, the embedder's name and the training settings (16 hex digits)."""
    h = hashlib.sha256()
    for path in files:
        h.update(Path(path).read_bytes())
    settings = (PATIENT_WEIGHT, L2, STEPS, LR, tuple(TEMPERATURES.round(4)), slugs())
    h.update(f"{Path(embedder_name).name}|{[Path(p).name for p in files]}|{settings}".encode())
    return h.hexdigest()[:16]


def model_dir(embedder_name: str, data_dir: Path | None, patient_file: Path = PATIENT_FILE) -> Path:
    """Cache folder of the router for these training files and embedder: ``$LLAMA_MD_SPECIALTY_CACHE`` or
    ``$XDG_CACHE_HOME/llama-md/specialty`` (default ``~/.cache/llama-md/specialty``), then the fingerprint."""
    from assistant.cache import cache_root

    return cache_root("specialty", "LLAMA_MD_SPECIALTY_CACHE") / fingerprint(
        source_files(data_dir, patient_file), embedder_name
    )


def build_router(settings=None, *, retrain: bool = False) -> tuple[Path, dict | None]:
    """Make sure the router for this data and embedder is in its cache folder.

    Returns:
        ``(folder, report)``: report is None when the folder already existed and ``retrain`` is False.

    Raises:
        ModelUnavailableError: the embedder cannot be loaded (see ``assistant.models``).
        ExampleDataError: the patient question file is missing or has a bad line.
    """
    import shutil

    from assistant.cache import save_atomically
    from assistant.config import load_settings
    from assistant.models import embedder_path, load_embedder

    settings = settings or load_settings()
    folder = model_dir(embedder_path(settings=settings), settings.data_dir)
    if folder.is_dir() and not retrain:
        return folder, None
    logger.info("training the specialty router into %s (once; about a minute on 2 CPU cores)", folder)
    embedder = load_embedder(settings=settings)
    router, report = train_router(
        lambda texts: embedder.encode(texts, normalize_embeddings=True, batch_size=64), settings.data_dir
    )
    if retrain and folder.is_dir():
        shutil.rmtree(folder)
    save_atomically(router, folder)
    return folder, report


_LOCK = threading.Lock()
_ROUTERS: dict[str, Router] = {}


def load_router(settings=None) -> Router:
    """The process's router (built first when missing, :func:`build_router`); it embeds on the chat's torch
    thread (:mod:`assistant.torch_thread`).

    Raises:
        ModelUnavailableError, ExampleDataError: as :func:`build_router`.
    """
    from assistant import torch_thread
    from assistant.config import load_settings
    from assistant.models import embedder_path, load_embedder

    settings = settings or load_settings()
    key = f"{embedder_path(settings=settings)}|{settings.data_dir}"
    with _LOCK:
        if key not in _ROUTERS:
            folder, _ = torch_thread.run(build_router, settings)
            embedder = torch_thread.run(load_embedder, None, settings)

            def embed(texts: list[str]) -> np.ndarray:
                return torch_thread.run(embedder.encode, texts, normalize_embeddings=True, batch_size=64)

            _ROUTERS[key] = Router.from_folder(folder, embed)
        return _ROUTERS[key]
