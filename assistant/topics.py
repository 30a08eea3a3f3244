"""Topic modeling of patient questions and the specialty pick.

Pipeline (BERTopic, Grootendorst 2022, https://arxiv.org/abs/2203.05794):

1. Embed every question with the project's embedding model (:func:`assistant.models.load_embedder`,
   all-MiniLM-L6-v2 by default; 384-d, L2-normalised), with a progress bar.
2. Reduce to 5 dimensions with UMAP (``n_neighbors=15, min_dist=0.0, metric="cosine"``, BERTopic's defaults)
   with ``random_state=seed``. A fixed seed makes UMAP single-threaded: slower, but the same seed gives the same
   topics.
3. Cluster with **KMeans** (``random_state=seed, n_init=10``) rather than BERTopic's default HDBSCAN. HDBSCAN can leave
   many questions as outliers (topic -1; not measured here), so topic shares would not add up and the specialty
   shares would depend on the outlier handling; KMeans puts every question in a topic and lets us choose
   the number of topics: about one per 100 questions, at least 10 (the report shows 10) and at most 40
   (:func:`topic_count`). Fewer than ``10 * MIN_TOPIC_SIZE`` questions give fewer topics (logged as a warning).
4. Keywords per topic from BERTopic's class-based TF-IDF over uni- and bigrams, English stop words plus the
   chat boilerplate in ``CHAT_STOP_WORDS`` ("doctor", "lately", ...), with ``reduce_frequent_words=True``.

Mapping topics to specialties uses **embedding similarity**, not BERTopic's ``zeroshot_topic_list``: zero-shot
assigns single *questions* to the label topics by cosine similarity and clusters only the rest, so the
specialties would replace the data's own topics and every decision would rest on one short question. Here each
topic keeps its data-driven questions; its centroid (mean of its question embeddings, re-normalised) is compared
with the embedding of every corpus manifest's ``description`` (``corpora/*.toml``). The topic goes to the most
similar specialty when that cosine similarity is at least ``MIN_SIMILARITY`` (0.20) *and* beats the runner-up by
``MIN_MARGIN`` (0.12); otherwise it goes to ``OTHER`` (no corpus fits, or two fit equally). A margin is needed
because the descriptions differ in how similar they are to anything: on chatdoctor5k (30 KMeans topics) the
chest-pain, psychosis/anxiety and pregnancy topics scored 0.46 / 0.48 / 0.34 with margins 0.21 / 0.34 / 0.18,
while a wrist/shoulder topic scored 0.25 for cardiology with a margin of 0.11 and eye, skin, ear topics stayed
below 0.20; in the written three-area test set a "weeks of pregnancy" topic scored only 0.26 for pregnancy but
0.26 ahead of the rest.

The pick is the specialty with the most questions among those that have a corpus manifest (``OTHER`` never wins);
``specialty=`` overrides it. :func:`write_report` saves ``topics.json`` (read by
:func:`assistant.config.picked_specialty`, so the pick becomes the settings' specialty) and ``topics.png``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.config import Settings, load_settings
from assistant.data import DatasetError, load_table, question_texts
from assistant.errors import LlamaMdError
from corpora import check_specialty, specialty_descriptions

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

TOP_N = 10
"""Topics reported (table, ``topics.json``, chart)."""
MIN_TOPIC_SIZE = 5
"""Questions per topic at least; fewer than ``TOP_N * MIN_TOPIC_SIZE`` questions give fewer topics."""
MAX_TOPICS = 40
QUESTIONS_PER_TOPIC = 100
MIN_SIMILARITY = 0.20
"""Cosine similarity (topic centroid vs corpus description) a topic needs to belong to a specialty."""
MIN_MARGIN = 0.12
"""How much more similar the best specialty must be than the runner-up."""
OTHER = "other"
N_KEYWORDS = 10
N_EXAMPLES = 3
CHAT_STOP_WORDS = (
    "doctor dr hi hello dear sir madam thanks thank ve im ive lately recently experiencing having really "
    "just got getting know like"
).split()
REPORT_NAME = "topics.json"
CHART_NAME = "topics.png"


class TopicsError(LlamaMdError, ValueError):
    """The questions can't be modeled (an empty dataset, too few questions); the message says what to change."""


@dataclass
class Topic:
    """One topic: ``share`` is ``size / n_questions``; ``similarity`` the cosine to its specialty's description."""

    id: int
    keywords: list[str]
    size: int
    share: float
    specialty: str
    examples: list[str]
    similarity: float = 0.0

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("id", "keywords", "size", "share", "specialty", "examples")}


@dataclass
class TopicReport:
    """Result of :func:`model_topics`. ``topics`` holds the top ``TOP_N`` by size; shares cover all topics."""

    topics: list[Topic]
    specialty_shares: dict[str, float]
    specialty: str | None
    dataset: str
    text_column: str
    n_questions: int
    seed: int
    seconds: float
    n_topics: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    overridden: bool = False

    def to_json(self) -> dict:
        """The ``topics.json`` document (read by :func:`assistant.config.picked_specialty` ; its keys are listed in docs/results.md, topics)."""
        return {
            "topics": [t.to_json() for t in self.topics],
            "specialty_shares": self.specialty_shares,
            "specialty": self.specialty,
            "dataset": self.dataset,
            "text_column": self.text_column,
            "n_questions": self.n_questions,
            "seed": self.seed,
            "seconds": self.seconds,
        }


def topic_count(n_questions: int) -> int:
    """Number of KMeans topics for ``n_questions``: ``clip(n // 100, 10, 40)``, fewer when data is short.

    Raises:
        TopicsError: fewer than ``2 * MIN_TOPIC_SIZE`` questions (no two topics of ``MIN_TOPIC_SIZE``).
    """
    if n_questions < 2 * MIN_TOPIC_SIZE:
        raise TopicsError(
            f"Only {n_questions} usable question(s); topic modeling needs at least {2 * MIN_TOPIC_SIZE} "
            f"(two topics of {MIN_TOPIC_SIZE}). Fix: use a larger dataset or another --text-column."
        )
    if n_questions < TOP_N * MIN_TOPIC_SIZE:
        count = n_questions // MIN_TOPIC_SIZE
        logger.warning(
            "%d questions are fewer than the %d that %d topics of %d need; returning %d topics.",
            n_questions,
            TOP_N * MIN_TOPIC_SIZE,
            TOP_N,
            MIN_TOPIC_SIZE,
            count,
        )
        return count
    return int(min(max(n_questions // QUESTIONS_PER_TOPIC, TOP_N), MAX_TOPICS))


def map_topics(
    centroids: np.ndarray,
    descriptions: np.ndarray,
    names: list[str],
    min_similarity: float = MIN_SIMILARITY,
    min_margin: float = MIN_MARGIN,
) -> list[tuple[str, float]]:
    """Assign each topic to its most similar specialty, or ``OTHER`` when it is not similar or not distinct enough.

    Args:
        centroids: ``(T, d)`` L2-normalised topic centroids.
        descriptions: ``(S, d)`` L2-normalised embeddings of the specialty descriptions.
        names: the ``S`` specialty names, in the order of ``descriptions``.
        min_similarity: cosine a topic needs to belong to a specialty.
        min_margin: cosine by which the best specialty must beat the second best (ignored when ``S == 1``).

    Returns:
        ``T`` pairs ``(specialty or OTHER, best cosine similarity)``.
    """
    scores = centroids @ descriptions.T  # (T, S)
    ranked = np.sort(scores, axis=1)[:, ::-1]
    margins = ranked[:, 0] - (ranked[:, 1] if scores.shape[1] > 1 else -np.inf)
    best = scores.argmax(axis=1)
    return [
        (
            names[b] if ranked[i, 0] >= min_similarity and margins[i] >= min_margin else OTHER,
            float(ranked[i, 0]),
        )
        for i, b in enumerate(best)
    ]


def _load(source: str | Path | Dataset) -> tuple[Dataset, str]:
    from datasets import Dataset

    if isinstance(source, Dataset):
        return source, "<in-memory dataset>"
    return load_table(source), str(source)


def model_topics(
    source: str | Path | Dataset,
    settings: Settings | None = None,
    *,
    text_column: str | None = None,
    seed: int | None = None,
    specialty: str | None = None,
    n_topics: int | None = None,
) -> TopicReport:
    """Model the topics of a dataset's questions and pick the specialty.

    Args:
        source: a local json / jsonl / csv / parquet file, a saved dataset folder, a hub id, or a ``Dataset``.
        settings: resolved settings (embedding model, default seed); default :func:`load_settings`.
        text_column: the question column; default found from the known schemas (:mod:`assistant.data`).
        seed: UMAP and KMeans seed; default ``settings.seed``.
        specialty: override of the pick (must be a corpus name).
        n_topics: number of KMeans topics; default :func:`topic_count`.

    Returns:
        A :class:`TopicReport`; ``seconds`` is the wall time from loading to the pick.

    Raises:
        DatasetError: unreadable dataset, unknown column (the columns found are listed) or unknown schema.
        TopicsError: empty dataset or too few usable questions.
        CorpusError: an unknown ``specialty`` (the valid ones are listed).
        ModelUnavailableError: the embedding model can't be loaded.
    """
    from assistant.models import load_embedder

    started = time.perf_counter()
    settings = settings or load_settings()
    seed = settings.seed if seed is None else seed
    if specialty is not None:
        check_specialty(specialty)
    dataset, name = _load(source)
    if len(dataset) == 0:
        raise TopicsError(f"Dataset {name} is empty (0 rows). Fix: give a dataset with patient questions.")
    texts = question_texts(dataset, text_column)
    if texts.skipped:
        logger.warning("Skipped %s values of column %r", texts.skipped, texts.column)
    n_topics = n_topics or topic_count(len(texts.texts))

    embedder = load_embedder(None, settings)
    logger.info("Embedding %d questions from column %r", len(texts.texts), texts.column)
    embeddings = embedder.encode(
        texts.texts, batch_size=64, show_progress_bar=True, normalize_embeddings=True, convert_to_numpy=True
    )
    labels, keywords = _cluster(texts.texts, embeddings, n_topics, seed, embedder)

    names = sorted(specialty_descriptions())
    desc = embedder.encode([specialty_descriptions()[n] for n in names], normalize_embeddings=True)
    ids = sorted(set(labels.tolist()), key=lambda t: (-int((labels == t).sum()), t))
    centroids = np.stack([_normalize(embeddings[labels == t].mean(axis=0)) for t in ids])
    mapping = map_topics(centroids, desc, names)

    n = len(texts.texts)
    all_topics = []
    for tid, centroid, (spec, sim) in zip(ids, centroids, mapping, strict=True):
        members = np.flatnonzero(labels == tid)
        nearest = members[np.argsort(-(embeddings[members] @ centroid), kind="stable")[:N_EXAMPLES]]
        all_topics.append(
            Topic(
                id=int(tid),
                keywords=keywords[tid],
                size=len(members),
                share=round(len(members) / n, 4),
                specialty=spec,
                examples=[texts.texts[i] for i in nearest],
                similarity=round(sim, 4),
            )
        )
    counts: dict[str, int] = {}
    for topic in all_topics:
        logger.debug(
            "topic %d: %d questions -> %s (cos %.2f) %s",
            topic.id,
            topic.size,
            topic.specialty,
            topic.similarity,
            ", ".join(topic.keywords[:5]),
        )
        counts[topic.specialty] = counts.get(topic.specialty, 0) + topic.size
    shares = {k: round(v / n, 4) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
    picked = next((k for k in shares if k != OTHER), None)
    if picked is None:
        logger.warning(
            "No topic is similar enough (>= %.2f, margin %.2f) to one corpus description.",
            MIN_SIMILARITY,
            MIN_MARGIN,
        )
    return TopicReport(
        topics=all_topics[:TOP_N],
        specialty_shares=shares,
        specialty=specialty or picked,
        dataset=name,
        text_column=texts.column,
        n_questions=n,
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
        n_topics=len(all_topics),
        skipped=texts.skipped,
        overridden=specialty is not None,
    )


def _normalize(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _cluster(
    texts: list[str], embeddings: np.ndarray, n_topics: int, seed: int, embedder
) -> tuple[np.ndarray, dict[int, list[str]]]:
    """Fit BERTopic (UMAP -> KMeans -> c-TF-IDF); returns ``(labels (N,), topic id -> keywords)``."""
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
    from umap import UMAP

    n = len(texts)
    umap = UMAP(
        n_neighbors=min(15, n - 1),
        n_components=5,
        min_dist=0.0,
        metric="cosine",
        random_state=seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so avoids its warning
        init="spectral" if n > 50 else "random",
    )
    vectorizer = CountVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | set(CHAT_STOP_WORDS)),
        ngram_range=(1, 2),
        min_df=2 if n >= 200 else 1,
    )
    model = BERTopic(
        embedding_model=embedder,
        umap_model=umap,
        hdbscan_model=KMeans(n_clusters=n_topics, random_state=seed, n_init=10),
        vectorizer_model=vectorizer,
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
        top_n_words=N_KEYWORDS,
    )
    logger.info("Fitting BERTopic: UMAP (seed %d) -> KMeans (%d topics) -> c-TF-IDF", seed, n_topics)
    labels, _ = model.fit_transform(texts, embeddings)
    labels = np.asarray(labels)
    keywords = {int(t): [w for w, _ in (model.get_topic(int(t)) or []) if w] for t in set(labels.tolist())}
    return labels, keywords


def write_report(report: TopicReport, out_dir: Path) -> tuple[Path, Path]:
    """Write ``out_dir/topics.json`` (atomically) and the bar chart ``out_dir/topics.png``.

    Returns:
        ``(json_path, png_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_topics(report, out_dir / CHART_NAME)
    path = out_dir / REPORT_NAME
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".topics-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(report.to_json(), fh, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path, png


def plot_topics(report: TopicReport, path: Path) -> Path:
    """Horizontal bar chart of the top topics' sizes, one colour per specialty; saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specialties = sorted({t.specialty for t in report.topics}, key=lambda s: (s == OTHER, s))
    palette = plt.get_cmap("tab10")
    colours = {s: ("0.6" if s == OTHER else palette(i)) for i, s in enumerate(specialties)}
    topics = report.topics[::-1]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(topics) + 1.5))
    ax.barh(
        [f"#{t.id} {', '.join(t.keywords[:3])}" for t in topics],
        [t.size for t in topics],
        color=[colours[t.specialty] for t in topics],
    )
    for s in specialties:
        ax.bar(0, 0, color=colours[s], label=s)
    ax.legend(title="specialty", loc="lower right")
    ax.set_xlabel("questions")
    shares = ", ".join(f"{k} {v:.0%}" for k, v in report.specialty_shares.items())
    fig.suptitle(
        f"Top {len(topics)} of {report.n_topics or len(topics)} topics, {report.n_questions} questions "
        f"({Path(report.dataset).name})\nall questions: {shares}; pick: {report.specialty}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = [
    "TopicsError",
    "Topic",
    "TopicReport",
    "model_topics",
    "map_topics",
    "topic_count",
    "write_report",
    "plot_topics",
    "DatasetError",
    "MIN_SIMILARITY",
    "MIN_MARGIN",
    "OTHER",
]
