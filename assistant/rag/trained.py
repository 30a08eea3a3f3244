"""The medical retriever (a fine-tuned bi-encoder) and re-ranker (a cross-encoder), built once per machine.

    llama-md retriever train              # both models (~10 min on 2 CPU cores, then cached)
    llama-md retriever train --force      # rebuild even when cached

Both start from the bundled all-MiniLM-L6-v2 and learn from :mod:`assistant.rag.pairs` (MedQuAD, the BioASQ
training split, inverse-cloze pairs from the curated PDFs), each pair with a hard negative mined by the base
retriever -- the recipe of MedCPT (Jin et al., Bioinformatics 2023), which MedRAG (Xiong et al., ACL Findings 2024)
found the strongest retriever for medical question answering, on the data that is here.

* **Retriever**: sentence-transformers' ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss``
  (in-batch negatives plus the mined one; Henderson et al. 2017, "Efficient Natural Language Response Suggestion"),
  one epoch. ``embedding_model = "llama-md/minilm-medical"`` (:data:`assistant.models.TRAINED_RETRIEVER`) names it; a store built with it records the model's
  fingerprint, so a retrained retriever is never mixed with old vectors (``llama-md retriever reembed``).
* **Re-ranker**: ``CrossEncoder`` initialised from the first :data:`RERANKER_LAYERS` layers of the same MiniLM,
  trained with ``BinaryCrossEntropyLoss`` on (question, positive, 1) and (question, negative, 0). Used twice on the
  answer path (``rerank = on``): to re-rank the fused candidates before the prompt, and to pick the quoted
  sentences (:mod:`assistant.chat.evidence`). Its output is a relevance probability (sigmoid), shape ``(n,)``.

Storage: safetensors plus the library's JSON configs, nothing pickled, in
``$LLAMA_MD_MODEL_CACHE`` (default ``~/.cache/llama-md``) ``/retriever/<fingerprint>`` and ``/reranker/<fingerprint>``;
``latest.json`` beside them names the newest build, which the aliases resolve to (:func:`assistant.models.trained_model_dir`). The fingerprint covers the training data (sha256 of the files
and of the held-out sets that are excluded), the base model and every setting below.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings
from assistant.models import TrainedModelError, model_cache_root

logger = logging.getLogger(__name__)

VERSION = 1  # raise when the recipe changes in a way the constants below don't show

MEDQUAD_PAIRS = 500
BIOASQ_PAIRS = 400
ICT_PAIRS = 800
"""Pairs per source: sized so both models train in a few minutes on 2 CPU cores (docs/results.md)."""
SEED = 0
BATCH_SIZE = 32
RETRIEVER_LR = 3e-5
RETRIEVER_MAX_SEQ = 256  # the stored chunks are up to 254 tokens: what the saved model reads
RETRIEVER_TRAIN_SEQ = 128  # tokens per text while training: half the cost of a step, the passage's first half
RERANKER_LAYERS = 6
"""Transformer layers kept in the cross-encoder (of MiniLM's 6). With 2 or 3 the classifier head learned only the
label prior within a few hundred steps (its [CLS] token needs depth to attend across the pair); 6 learned."""
RERANKER_PAIRS = 1000
"""Pairs the re-ranker trains on (the first of the shuffled pairs; each gives a positive and a negative row)."""
RERANKER_LR = 1e-4
RERANKER_MAX_SEQ = 256
RERANKER_TRAIN_SEQ = 192  # tokens per (question, passage) while training
WARMUP_RATIO = 0.1


@dataclass
class BuildReport:
    """What one build did: the folder, seconds per stage, pair counts, and whether it was cached."""

    folder: Path
    cached: bool
    seconds: dict
    pairs: dict

    def to_dict(self) -> dict:
        return {
            "folder": str(self.folder),
            "cached": self.cached,
            "seconds": self.seconds,
            "pairs": self.pairs,
        }


def _sha_file(h, path: Path) -> None:
    if path.is_file():
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    h.update(str(path.name).encode())


def pairs_fingerprint(data_dir: Path, base_model: str) -> str:
    """sha256 (16 hex digits) over the training data, the held-out sets, the corpus manifests, the base model's
    name and the pair settings: what the training pairs depend on."""
    from assistant.rag import pairs
    from corpora import MANIFEST_DIR

    h = hashlib.sha256()
    for rel in (pairs.MEDQUAD, pairs.BIOASQ, pairs.MEDQUAD_SAMPLE):
        _sha_file(h, Path(data_dir) / rel)
    for name in pairs.PAGE_SETS:
        _sha_file(h, pairs.EVAL_DATA / name)
    for manifest in sorted(MANIFEST_DIR.glob("*.toml")):
        _sha_file(h, manifest)
    recipe = (
        VERSION,
        MEDQUAD_PAIRS,
        BIOASQ_PAIRS,
        ICT_PAIRS,
        SEED,
        pairs.NEAR_DUPLICATE,
        pairs.MIN_PROSE_SHARE,
    )
    h.update(f"{Path(base_model).name}|{recipe}".encode())
    return h.hexdigest()[:16]


def fingerprint(kind: str, pairs_fp: str) -> str:
    """The cache key of one model: its pairs' fingerprint and its own training settings (16 hex digits)."""
    recipe = {
        "retriever": (BATCH_SIZE, RETRIEVER_LR, RETRIEVER_MAX_SEQ, RETRIEVER_TRAIN_SEQ, WARMUP_RATIO),
        "reranker": (
            BATCH_SIZE,
            RERANKER_PAIRS,
            RERANKER_LAYERS,
            RERANKER_LR,
            RERANKER_MAX_SEQ,
            WARMUP_RATIO,
        ),
    }[kind]
    return hashlib.sha256(f"{pairs_fp}|{kind}|{recipe}".encode()).hexdigest()[:16]


def load_or_build_pairs(settings: Settings, base_dir: str) -> tuple[list, dict, float]:
    """The training pairs for this data, built once (:func:`build_pairs`) and kept as JSON beside the models.

    Returns:
        ``(pairs, counts, seconds)``; seconds is 0 when they came from the cache.
    """
    from assistant.models import EMBEDDED_EMBEDDER, load_embedder
    from assistant.rag.pairs import Pair

    path = model_cache_root() / "retrieval-pairs" / f"{pairs_fingerprint(settings.data_dir, base_dir)}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return [Pair(**p) for p in data["pairs"]], data["counts"], 0.0
    started = time.perf_counter()
    pairs, counts = build_pairs(settings, load_embedder(EMBEDDED_EMBEDDER, settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"counts": counts, "pairs": [p.to_dict() for p in pairs]}))
    os.replace(tmp, path)
    return pairs, counts, round(time.perf_counter() - started, 1)


def _mark_latest(kind: str, folder: Path) -> None:
    pointer = model_cache_root() / kind / "latest.json"
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": folder.name}))
    os.replace(tmp, pointer)


def _save_atomically(save, folder: Path) -> None:
    """``save(tmp)`` into a temporary sibling, then rename: a crash never leaves a half-written model."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        save(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bf16() -> bool:
    """Train in bf16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX; ~3x faster steps here)."""
    from assistant.models import cpu_bf16_flags, default_device

    return default_device() == "cpu" and bool(cpu_bf16_flags())


def build_pairs(settings: Settings, base_model) -> tuple[list, dict]:
    """Training pairs with hard negatives (:mod:`assistant.rag.pairs`), held-out questions removed.

    Returns:
        ``(pairs, counts)``; counts per source, the number dropped as held out, and mining yield.

    Raises:
        TrainedModelError: no data folder (the pairs come from ``../shared``).
    """
    from assistant.rag import pairs as P

    if settings.data_dir is None:
        raise TrainedModelError(
            "The medical retriever trains on MedQuAD, BioASQ and the curated PDFs in the data folder, and none is "
            "set. Fix: set LLAMA_MD_DATA_DIR to the folder with datasets/ and corpora/ (e.g. ../shared), or keep "
            "the bundled all-MiniLM-L6-v2 (embedding_model default, rerank = off)."
        )
    held_ids, held_questions = P.held_out_questions(settings.data_dir)
    chunks = corpus_chunks(settings, base_model)
    candidates = (
        P.medquad_pairs(settings.data_dir, MEDQUAD_PAIRS, SEED, held_ids)
        + P.bioasq_pairs(settings.data_dir, BIOASQ_PAIRS, SEED)
        + P.ict_pairs(chunks, ICT_PAIRS, SEED)
    )

    def embed(texts):
        return base_model.encode(
            list(texts), normalize_embeddings=True, batch_size=64, show_progress_bar=False
        )

    kept, dropped = P.drop_held_out(candidates, held_questions, embed)
    mined = P.mine_negatives(kept, base_model)
    counts = {s: sum(p.source == s for p in mined) for s in ("medquad", "bioasq", "ict")}
    counts.update({"held_out_dropped": dropped, "without_negative": len(kept) - len(mined)})
    return mined, counts


def corpus_chunks(settings: Settings, base_model) -> list[dict]:
    """Every curated PDF found under the data folder, split like ingest does: ``[{text, file, page}]``."""
    from llama_index.core import Document

    from assistant.models import EMBEDDED_EMBEDDER, load_index_embedder
    from assistant.rag.ingest import make_splitter
    from assistant.rag.pdf import PdfError, read_pdf
    from corpora import CorpusError, list_corpora, resolve_corpus

    splitter = make_splitter(settings, load_index_embedder(EMBEDDED_EMBEDDER, settings))

    chunks = []
    for name in list_corpora():
        try:
            paths = resolve_corpus(name, settings.data_dir, download=False)
        except CorpusError as exc:
            logger.warning("retriever training: corpus %s skipped (%s)", name, exc)
            continue
        for path in paths:
            try:
                pdf = read_pdf(path)
            except PdfError as exc:
                logger.warning("retriever training: %s skipped (%s)", path.name, exc)
                continue
            docs = [Document(text=p.text, metadata={"file": path.name, "page": p.number}) for p in pdf.pages]
            for doc in docs:
                doc.excluded_embed_metadata_keys = doc.excluded_llm_metadata_keys = ["file", "page"]
            for node in splitter(docs):
                chunks.append(
                    {"text": node.get_content(), "file": node.metadata["file"], "page": node.metadata["page"]}
                )
    return chunks


def _one_epoch(output_dir: str, learning_rate: float) -> dict:
    """The training arguments both models share: one epoch on the CPU, linear warm-up, no checkpoints."""
    return {
        "output_dir": output_dir, "num_train_epochs": 1, "per_device_train_batch_size": BATCH_SIZE,
        "learning_rate": learning_rate, "warmup_ratio": WARMUP_RATIO, "bf16": _bf16(), "use_cpu": True,
        "save_strategy": "no", "report_to": "none", "logging_steps": 10, "seed": SEED, "dataloader_num_workers": 0,
    }  # fmt: skip


def train_retriever(base_dir: str, pairs: list, out: Path) -> None:
    """Fine-tune the bi-encoder on ``pairs`` (query, positive, negative) with MultipleNegativesRankingLoss."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from sentence_transformers.base.sampler import BatchSamplers

    model = SentenceTransformer(base_dir, device="cpu")
    model.max_seq_length = RETRIEVER_TRAIN_SEQ
    data = Dataset.from_dict(
        {"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs],
         "negative": [p.negative for p in pairs]}
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            **_one_epoch(tmp, RETRIEVER_LR),
            batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate passage would be a false in-batch negative
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=data, loss=losses.MultipleNegativesRankingLoss(model)
        )
        trainer.train()
    model.max_seq_length = RETRIEVER_MAX_SEQ
    model.save_pretrained(str(out), safe_serialization=True)


def train_reranker(base_dir: str, pairs: list, out: Path) -> None:
    """Train the cross-encoder (first :data:`RERANKER_LAYERS` layers of the base) on positives and negatives."""
    import random

    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )

    model = CrossEncoder(base_dir, num_labels=1, max_length=RERANKER_TRAIN_SEQ, device="cpu")
    bert = model[0].auto_model
    encoder = bert.base_model.encoder
    encoder.layer = encoder.layer[:RERANKER_LAYERS]
    bert.config.num_hidden_layers = RERANKER_LAYERS
    chosen = random.Random(SEED).sample(pairs, min(RERANKER_PAIRS, len(pairs)))
    rows = [(p.query, p.positive, 1.0) for p in chosen] + [(p.query, p.negative, 0.0) for p in chosen]
    random.Random(SEED).shuffle(rows)
    data = Dataset.from_dict(
        {"query": [r[0] for r in rows], "passage": [r[1] for r in rows], "label": [r[2] for r in rows]}
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = CrossEncoderTrainingArguments(**_one_epoch(tmp, RERANKER_LR))
        trainer = CrossEncoderTrainer(
            model=model, args=args, train_dataset=data, loss=losses.BinaryCrossEntropyLoss(model)
        )
        trainer.train()
    model.max_seq_length = RERANKER_MAX_SEQ
    model.save_pretrained(str(out), safe_serialization=True)


def build_models(settings: Settings, *, force: bool = False) -> dict[str, BuildReport]:
    """Build the retriever and the re-ranker when their cache folders are missing (or ``force``).

    Returns:
        ``{"retriever": BuildReport, "reranker": BuildReport}``.

    Raises:
        TrainedModelError: no data folder.
        ModelUnavailableError: the bundled MiniLM is missing.
    """
    from assistant.models import EMBEDDED_EMBEDDER, embedder_path

    base_dir = embedder_path(EMBEDDED_EMBEDDER, settings)
    if settings.data_dir is None:
        build_pairs(settings, None)  # raises the error that says what to set
    pairs_fp = pairs_fingerprint(settings.data_dir, base_dir)
    reports, pairs, counts, pair_seconds = {}, None, {}, 0.0
    for kind, train in (("retriever", train_retriever), ("reranker", train_reranker)):
        folder = model_cache_root() / kind / fingerprint(kind, pairs_fp)
        if folder.is_dir() and not force:
            _mark_latest(kind, folder)
            reports[kind] = BuildReport(folder, True, {}, {})
            continue
        if pairs is None:
            pairs, counts, pair_seconds = load_or_build_pairs(settings, base_dir)
            logger.info("retriever training pairs: %s (%.0f s)", counts, pair_seconds)
        t0 = time.perf_counter()
        _save_atomically(lambda tmp, train=train, pairs=pairs: train(base_dir, pairs, tmp), folder)
        (folder / "llama-md-training.json").write_text(
            json.dumps({"fingerprint": folder.name, "pairs_fingerprint": pairs_fp, "pairs": counts,
                        "base": Path(base_dir).name, "version": VERSION})
        )  # fmt: skip
        _mark_latest(kind, folder)
        took = round(time.perf_counter() - t0, 1)
        logger.info("%s trained in %.0f s -> %s", kind, took, folder)
        reports[kind] = BuildReport(folder, False, {"pairs": pair_seconds, "train": took}, counts)
        pair_seconds = 0.0
    return reports
