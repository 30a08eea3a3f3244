"""Retrieve passages with page citations from the ingested Chroma store.

Three modes over the same collection:

* ``dense``: the query is embedded with the store's embedding model and Chroma returns the nearest chunks.
* ``hybrid``: dense and llama-index's ``BM25Retriever`` (bm25s, English stemming and stop words) each propose
  ``CANDIDATES`` chunks; reciprocal-rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009: sum of
  ``1 / (RRF_K + rank)``, ``RRF_K = 60``) orders them.
* ``convex`` (default): the same two candidate lists (plus the BM25 score of every dense candidate), ordered by a convex
  combination of normalised scores, ``0.5 * minmax(cosine) + 0.5 * bm25 / max(bm25)`` (Bruch, Gai & Ingber, ACM
  TOIS 2023: convex combination beats RRF when scores are kept). On the pregnancy page questions it raised
  recall@1 from 0.71 to 0.78 and MRR@5 from 0.815 to 0.851 over ``hybrid`` (recall@5 0.96 -> 0.98), and on MedQuAD
  quick (500 answers) it keeps dense's figures where RRF loses them (recall@5 0.92 vs dense 0.93, hybrid 0.91;
  MRR@5 0.88 vs 0.88, 0.86 in a sweep with exact search; ``benchmarks/retrieval_bench.py --modes``).
  On the held-out page questions (set 2, 68 questions written without running retrieval, never tuned on) convex
  vs hybrid: recall@5 0.897 vs 0.868, recall@10 0.926 vs 0.912, MRR@5 0.650 vs 0.646, recall@1 0.485 vs 0.500.

Tried on the same questions and not kept (scratch sweeps; the weights are one question = 0.02): reranking the fused
candidates by sentence-level similarity (max over a chunk's sentences of cosine(query, sentence), alone, mixed
with the chunk score or as a third RRF list: recall@1 0.57-0.76, never above ``convex``), BM25 weighted 2x in RRF
(recall@1 0.78 but MedQuAD recall@1 0.83 -> 0.80), k1 / b of BM25, RRF k 10-100, 20-100 candidates, Rocchio
pseudo-relevance feedback on the query embedding and RM3 on BM25 (each within one or two questions of ``hybrid``).

In every mode the ranked chunks are then collapsed to one per page (the best-ranked chunk of each (file, page)):
a citation names a page, so a second chunk of a cited page only takes the slot of another page. On the pregnancy
page questions this raised hybrid recall@5 from 0.94 to 0.96 and MRR@5 from 0.74 to 0.76 (docs/results.md, ingest and retrieval).

Before each query the retriever reads the store's generation counter (:mod:`assistant.rag.store`); when an ingest
or a ``--rebuild`` (in this or another process) changed it, the retriever reopens the collection and its BM25
index, so dense and BM25 hits come from the same, current store.

In every mode ``Hit.score`` is the cosine similarity between the query and the chunk embeddings (higher is
better), so one threshold (``settings.min_score``) means the same whichever mode ranked the hits.
``DEFAULT_MODE`` is the mode that won ``benchmarks/retrieval_bench.py`` (docs/results.md).

    from assistant.rag.retrieve import Retriever
    r = Retriever.from_settings(settings)
    for hit in r.retrieve("iron supplements in pregnancy", top_k=5):
        print(hit.file, hit.page_label, round(hit.score, 3))
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from assistant.config import Settings

logger = logging.getLogger(__name__)

MODES = ("dense", "hybrid", "convex")
DEFAULT_MODE = "convex"  # pregnancy page questions: convex wins recall@1 and MRR@5, and keeps MedQuAD (above)
CANDIDATES = 30  # per retriever, before fusion
RRF_K = 60
CONVEX_BM25_WEIGHT = 0.5  # convex mode: weight of the normalised BM25 score (dense gets 1 - this)
SWAP_RETRIES = 20  # x 0.1 s: how long a query waits for a --rebuild's swap to finish


@dataclass
class Hit:
    """One retrieved chunk. ``page`` is 1-based; ``page_label`` is the printed label (e.g. ``xii``)."""

    text: str
    score: float  # cosine similarity query <-> chunk, in [-1, 1]
    file: str
    page: int
    page_label: str
    specialty: str
    title: str
    chunk_id: str
    uploaded: bool = False  # from the asking user's own uploads (their store), not the curated library
    rerank: float | None = None  # the re-ranker's relevance probability in [0, 1]; None when it did not run

    def to_dict(self) -> dict:
        return asdict(self)


def _hit(chunk_id: str, text: str, meta: dict, score: float) -> Hit:
    meta = meta or {}
    page = int(meta.get("page", 0) or 0)
    return Hit(
        text=text or "",
        score=float(score),
        file=str(meta.get("file", "")),
        page=page,
        page_label=str(meta.get("page_label") or page),
        specialty=str(meta.get("specialty", "")),
        title=str(meta.get("title", "")),
        chunk_id=chunk_id,
        uploaded=bool(meta.get("uploaded", False)),
    )


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = RRF_K) -> list[str]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank 1-based; best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda item: -scores[item])


def convex_fusion(
    dense: dict[str, float], sparse: dict[str, float], bm25_weight: float = CONVEX_BM25_WEIGHT
) -> list[str]:
    """Fuse by a convex combination of normalised scores, best first (Bruch, Gai & Ingber, "An Analysis of Fusion
    Functions for Hybrid Retrieval", ACM TOIS 2023, arXiv 2210.11934).

    Args:
        dense: id -> cosine similarity, for every id to rank (the dense candidates and the BM25-only ones).
        sparse: id -> BM25 score (>= 0); an id absent here scores 0.
        bm25_weight: weight of the BM25 term in [0, 1]; dense gets ``1 - bm25_weight``.

    Returns:
        The ids of ``dense``, ordered by ``(1 - w) * minmax(cosine) + w * bm25 / max(bm25)``: cosine min-max scaled
        over ``dense``, BM25 scaled by its maximum (its theoretical minimum is 0, as in the paper's TM2C2).
    """
    ids = list(dense)
    if not ids:
        return []
    cos = np.array([dense[i] for i in ids], dtype=np.float64)
    bm = np.array([max(sparse.get(i, 0.0), 0.0) for i in ids], dtype=np.float64)
    cos = (cos - cos.min()) / (cos.max() - cos.min()) if cos.max() > cos.min() else np.zeros_like(cos)
    bm = bm / bm.max() if bm.max() > 0 else bm
    fused = (1.0 - bm25_weight) * cos + bm25_weight * bm
    return [ids[j] for j in np.argsort(-fused, kind="stable")]


@dataclass(frozen=True)
class Bm25Index:
    """A BM25 index and the row of each chunk id in it: built together, read together."""

    retriever: object  # llama-index BM25Retriever
    rows: dict[str, int]  # chunk id -> row of the index
    count: int  # chunks in the collection when it was built


def one_per_page(hits: list[Hit]) -> list[Hit]:
    """Keep the first (best-ranked) hit of each (file, page), order preserved."""
    seen, kept = set(), []
    for hit in hits:
        page = (hit.file, hit.page)
        if page not in seen:
            seen.add(page)
            kept.append(hit)
    return kept


class Retriever:
    """Embedding model + collection (+ BM25 index in hybrid mode), loaded once and reused per query."""

    def __init__(
        self,
        settings: Settings,
        collection,
        embed_model,
        mode: str = DEFAULT_MODE,
        *,
        chroma_url: str | None = None,
        follow_store: bool = True,
        reranker=None,
    ) -> None:
        """``follow_store``: reopen when the store's generation changes (False: keep ``collection`` as given);
        ``reranker``: a :class:`assistant.rag.rerank.Reranker` that orders the first
        :data:`~assistant.rag.rerank.CANDIDATES` pages of the fused ranking (None: the fused order stands)."""
        from assistant.rag.store import store_generation

        if mode not in MODES:
            raise ValueError(f"Unknown retrieval mode {mode!r}; use one of {MODES}.")
        self.settings, self.collection, self.embed_model, self.mode = settings, collection, embed_model, mode
        self.chroma_url, self.follow_store, self.reranker = chroma_url, follow_store, reranker
        self._generation = (collection.id, store_generation(collection))
        self._client = None  # opened on the first refresh, reopened fresh when the store changed
        self._bm25: Bm25Index | None = None  # replaced whole under the lock, never changed in place
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, mode: str | None = None, *, chroma_url: str | None = None
    ) -> Retriever:
        """Open the settings' collection and load its embedding model.

        Args:
            settings: collection, embedding_model, home (store under ``home/store``), top_k.
            mode: "dense" or "hybrid"; None picks ``DEFAULT_MODE``.
            chroma_url: a Chroma server (``http://HOST:PORT``) instead of the embedded store.

        Raises:
            StoreError: no collection (the message names the ingest command) or one built with another
                embedding model (names both; says ``--rebuild``).
        """
        from assistant.models import load_index_embedder
        from assistant.rag.rerank import load_reranker
        from assistant.rag.store import open_collection

        collection = open_collection(settings, chroma_url=chroma_url)
        return cls(
            settings,
            collection,
            load_index_embedder(None, settings),
            mode or DEFAULT_MODE,
            chroma_url=chroma_url,
            reranker=load_reranker(settings),
        )

    def refresh(self) -> bool:
        """Reopen the collection when its generation (or, after a ``--rebuild``, its id) changed.

        Returns:
            True when the retriever reopened the store.

        Raises:
            StoreError: the store is gone or now refuses these settings (another embedding model).
        """
        from assistant.rag.store import StoreError, open_client, open_collection, store_generation

        if not self.follow_store:
            return False
        with self._lock:
            if self._client is None:
                self._client = open_client(self.settings, self.chroma_url)
            for attempt in range(SWAP_RETRIES):  # a --rebuild renames two collections: a brief gap
                try:
                    current = open_collection(self.settings, chroma_url=self.chroma_url, client=self._client)
                    break
                except StoreError:
                    if attempt == SWAP_RETRIES - 1:
                        raise
                    time.sleep(0.1)
            now = (current.id, store_generation(current))
            if now == self._generation:
                return False
            # another process wrote: a fresh client reads its vectors (chroma-core/chroma#3792)
            self._client = open_client(self.settings, self.chroma_url, fresh=True)
            self.collection = open_collection(self.settings, chroma_url=self.chroma_url, client=self._client)
            self._generation = (self.collection.id, store_generation(self.collection))
            self._bm25 = None
            logger.info("The store changed (generation %d); reopened it", self._generation[1])
            return True

    def count(self) -> int:
        """Chunks in the collection."""
        return self.collection.count()

    def embed_query(self, query: str) -> np.ndarray:
        """Unit-length query embedding, shape (dim,); computed on the torch thread (:mod:`assistant.torch_thread`)."""
        from assistant import torch_thread

        return np.asarray(torch_thread.run(self.embed_model.get_query_embedding, query), dtype=np.float32)

    def retrieve(self, query: str, top_k: int | None = None) -> list[Hit]:
        """The ``top_k`` best chunks for ``query``, best first (``top_k`` default: settings.top_k), one per page.

        The mode's fused ranking decides; with a re-ranker its first :data:`~assistant.rag.rerank.CANDIDATES`
        pages are re-ordered by the cross-encoder before ``top_k`` are kept.

        Returns:
            Hits with cosine-similarity scores; empty when the query is blank or the collection is empty.
        """
        from assistant.rag.rerank import CANDIDATES as RERANK_CANDIDATES

        top_k = top_k or self.settings.top_k
        self.refresh()
        if not query.strip() or self.count() == 0:
            return []
        q = self.embed_query(query)
        if self.mode == "dense":
            ranked = one_per_page(self._dense(q, max(CANDIDATES, top_k)))
        elif self.mode == "convex":
            ranked = self._convex(query, q, max(CANDIDATES, top_k))
        else:
            ranked = self._hybrid(query, q, max(CANDIDATES, top_k))
        if self.reranker is not None:
            return self.reranker.rerank(query, ranked[: max(RERANK_CANDIDATES, top_k)], top_k)
        return ranked[:top_k]

    def _dense(self, q: np.ndarray, n: int) -> list[Hit]:
        res = self.collection.query(
            query_embeddings=[q.tolist()],
            n_results=n,
            include=["documents", "metadatas", "distances"],
        )
        return [
            _hit(i, t, m, 1.0 - d)
            for i, t, m, d in zip(
                res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]

    def _bm25_retriever(self) -> Bm25Index:
        """BM25 over every chunk of the collection with its row map, as one object; rebuilt (a new object) when the
        collection's size changed, so a query that took it keeps a matching index and row map."""
        with self._lock:
            count = self.count()
            if self._bm25 is None or count != self._bm25.count:
                from llama_index.core.schema import TextNode
                from llama_index.retrievers.bm25 import BM25Retriever

                logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
                data = self.collection.get(include=["documents"])
                nodes = [
                    TextNode(id_=i, text=t or "") for i, t in zip(data["ids"], data["documents"], strict=True)
                ]
                retriever = BM25Retriever.from_defaults(
                    nodes=nodes, similarity_top_k=min(CANDIDATES, len(nodes)), language="en"
                )
                rows = {i: j for j, i in enumerate(data["ids"])}  # chunk id -> row of the index
                self._bm25 = Bm25Index(retriever, rows, count)
                logger.info("BM25 index built over %d chunks", count)
            return self._bm25

    def _hybrid(self, query: str, q: np.ndarray, n: int) -> list[Hit]:
        """Every candidate page (``n`` dense candidates plus BM25's), ordered by reciprocal-rank fusion."""
        dense = self._dense(q, n)
        sparse = [n.node.node_id for n in self._bm25_retriever().retriever.retrieve(query)]
        fused = reciprocal_rank_fusion([[h.chunk_id for h in dense], sparse])
        known = self._with_bm25_only(dense, fused, q)
        return one_per_page([known[i] for i in fused])

    def _convex(self, query: str, q: np.ndarray, n: int) -> list[Hit]:
        """Every candidate page (``n`` dense candidates plus BM25's), ordered by the convex combination of
        normalised dense and BM25 scores."""
        dense = self._dense(q, n)
        bm25 = self._bm25_retriever()
        top = [n.node.node_id for n in bm25.retriever.retrieve(query)]
        known = self._with_bm25_only(dense, list(dict.fromkeys([h.chunk_id for h in dense] + top)), q)
        fused = convex_fusion({i: h.score for i, h in known.items()}, self._bm25_scores(bm25, query, known))
        return one_per_page([known[i] for i in fused])

    def _bm25_scores(self, index: Bm25Index, query: str, ids) -> dict[str, float]:
        """BM25 score of every id in ``ids`` (not only BM25's top candidates): bm25s ``get_scores`` on the index
        the llama-index retriever holds, the query tokenized as that retriever does (English stop words, stemmer),
        each id's row read from the same ``index`` (another thread may have rebuilt ``self._bm25`` meanwhile).
        """
        import bm25s

        bm25, rows = index.retriever, index.rows
        tokens = bm25s.tokenize(
            query,
            stopwords="en",
            stemmer=bm25.stemmer,
            token_pattern=bm25.token_pattern,
            return_ids=False,
            show_progress=False,
        )[0]
        tokens = [t for t in tokens if t in bm25.bm25.vocab_dict]
        if not tokens:
            return {}
        scores = bm25.bm25.get_scores(tokens)
        return {i: float(scores[rows[i]]) for i in ids if i in rows}

    def _with_bm25_only(self, dense: list[Hit], ranked: list[str], q: np.ndarray) -> dict[str, Hit]:
        """``dense`` by id plus a Hit for each id of ``ranked`` that dense did not return, scored by the same
        cosine similarity as dense hits."""
        known = {h.chunk_id: h for h in dense}
        missing = [i for i in ranked if i not in known]
        if missing:
            data = self.collection.get(ids=missing, include=["documents", "metadatas", "embeddings"])
            for i, t, m, e in zip(
                data["ids"], data["documents"], data["metadatas"], data["embeddings"], strict=True
            ):
                known[i] = _hit(i, t, m, float(np.dot(np.asarray(e, dtype=np.float32), q)))
        return known


_CACHE: dict[tuple, Retriever] = {}


def retrieve(query: str, top_k: int | None = None, settings: Settings | None = None) -> list[Hit]:
    """Convenience: one cached Retriever per (home, collection, embedding model); see ``Retriever.retrieve``.

    Raises:
        StoreError: as ``Retriever.from_settings``.
    """
    from assistant.config import load_settings

    settings = settings or load_settings()
    key = (str(settings.home.resolve()), settings.collection, settings.embedding_model)
    if key not in _CACHE:
        _CACHE[key] = Retriever.from_settings(settings)
    return _CACHE[key].retrieve(query, top_k or settings.top_k)
