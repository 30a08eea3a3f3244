"""Retrieval over a real store: the right page comes back, scores are cosine similarities in both modes, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.config import load_settings
from assistant.models import load_index_embedder
from assistant.rag.ingest import ingest_paths
from assistant.rag.retrieve import (
    Hit,
    Retriever,
    convex_fusion,
    one_per_page,
    reciprocal_rank_fusion,
    retrieve,
)
from tests.helpers import TOPICS, topic_pages, write_pdf


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """Settings of a store holding two generated PDFs (pages about different TOPICS)."""
    root = tmp_path_factory.mktemp("retrieval")
    write_pdf(root / "in" / "one.pdf", topic_pages(0, 4))
    write_pdf(root / "in" / "two.pdf", topic_pages(4, 4), roman_pages=2)
    settings = load_settings({"home": str(root / "home")}, environ={})
    report = ingest_paths([root / "in"], settings, specialty="pregnancy")
    assert report.totals()["ingested"] == 2
    return settings


def test_reciprocal_rank_fusion_rewards_agreement():
    assert reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]]) == ["b", "c", "a", "d"]


def test_convex_fusion_weighs_normalised_scores():
    dense = {"a": 0.9, "b": 0.7, "c": 0.5}  # min-max: a 1, b 0.5, c 0
    sparse = {"c": 10.0, "b": 6.0}  # / max: c 1, b 0.6, a (absent) 0
    assert convex_fusion(dense, sparse, bm25_weight=0.0) == ["a", "b", "c"]
    assert convex_fusion(dense, sparse, bm25_weight=1.0) == ["c", "b", "a"]
    # w = 0.5: a 0.5, b 0.55, c 0.5 -> b first; a before c (stable on ties)
    assert convex_fusion(dense, sparse, bm25_weight=0.5) == ["b", "a", "c"]
    assert convex_fusion({}, sparse) == []
    assert convex_fusion({"x": 0.4, "y": 0.4}, {}) == ["x", "y"]


@pytest.mark.parametrize("mode", ["dense", "hybrid", "convex"])
def test_the_page_about_the_topic_comes_first_with_its_label(small_store, mode):
    r = Retriever.from_settings(small_store, mode)
    hits = r.retrieve("When is a pregnant woman given tetanus toxoid vaccination?", top_k=3)
    assert len(hits) == 3
    # tetanus is TOPICS[4]: page 1 of two.pdf only (label "i"); one.pdf covers TOPICS[0:4]
    assert (hits[0].file, hits[0].page, hits[0].page_label) == ("two.pdf", 1, "i")
    assert hits[0].specialty == "pregnancy" and hits[0].chunk_id.startswith("two.pdf::p1::c")
    if mode == "dense":
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_scores_are_cosine_similarities_in_both_modes(small_store):
    query = "calcium supplementation and pre-eclampsia"
    dense = Retriever.from_settings(small_store, "dense").retrieve(query, top_k=8)
    hybrid = Retriever.from_settings(small_store, "hybrid").retrieve(query, top_k=8)
    convex = Retriever.from_settings(small_store, "convex").retrieve(query, top_k=8)
    model = load_index_embedder(None, small_store).model
    q = model.encode(query, normalize_embeddings=True)
    texts = model.encode([h.text for h in dense + hybrid + convex], normalize_embeddings=True)
    expected = texts @ q
    assert np.allclose([h.score for h in dense + hybrid + convex], expected, atol=1e-3)
    unrelated = Retriever.from_settings(small_store, "dense").retrieve(
        "quarterly tax filing for a company", 1
    )
    assert unrelated[0].score < dense[0].score


def test_retrieve_convenience_uses_settings_top_k(small_store):
    hits = retrieve(TOPICS[1], settings=small_store)
    assert len(hits) == small_store.top_k and hits[0].file in ("one.pdf", "two.pdf")
    assert retrieve("   ", settings=small_store) == []


def test_search_cli_json_and_from_file(small_store, tmp_path, capsys):
    from assistant.__main__ import main

    queries = tmp_path / "q.txt"
    queries.write_text(f"{TOPICS[2]}\n\n{TOPICS[7]}\n")
    home = str(small_store.home)
    assert (
        main(["search", "--home", home, "--top-k", "2", "--json", TOPICS[0], "--from-file", str(queries)])
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [rec["query"] for rec in lines] == [TOPICS[0], TOPICS[2], TOPICS[7]]
    for rec in lines:
        assert len(rec["hits"]) == 2
        assert set(rec["hits"][0]) == {"file", "page", "page_label", "score", "text"}
    assert main(["search", "--home", str(tmp_path / "nohome"), "anything"]) == 1
    assert "python -m ingest" in capsys.readouterr().err


def test_real_pdf_question_finds_its_page(data_dir, tmp_path):
    folder = data_dir / "corpora" / "pregnancy"
    settings = load_settings({"home": str(tmp_path / "home")}, environ={})
    ingest_paths(
        [folder / "NIMH_perinatal_depression.pdf", folder / "NIMH_depression_in_women_4_things_to_know.pdf"],
        settings,
    )
    hits = Retriever.from_settings(settings).retrieve("What are the symptoms of perinatal depression?", 3)
    assert ("NIMH_perinatal_depression.pdf", 2) in [(h.file, h.page) for h in hits]
    assert hits[0].title == "Perinatal Depression (NIH Publication No. 23-MH-8116, revised 2023)"
    assert hits[0].specialty == "pregnancy"


def test_one_chunk_per_page_keeps_the_best_ranked_and_the_order():
    def hit(file: str, page: int, chunk: str) -> Hit:
        return Hit("text", 0.5, file, page, str(page), "pregnancy", "title", chunk)

    ranked = [hit("a.pdf", 3, "a3-1"), hit("a.pdf", 3, "a3-2"), hit("b.pdf", 3, "b3"), hit("a.pdf", 4, "a4")]
    assert [h.chunk_id for h in one_per_page(ranked)] == ["a3-1", "b3", "a4"]


def test_convex_mode_reads_the_same_bm25_scores_as_the_bm25_retriever(small_store):
    """The full-corpus BM25 scores the convex mode fuses equal the scores llama-index's retriever gives its top hits
    (same tokenizer, same index), and a chunk without any query term scores 0."""
    r = Retriever.from_settings(small_store, "convex")
    query = "tetanus toxoid vaccination schedule"
    bm25 = r._bm25_retriever()
    top = bm25.retriever.retrieve(query)
    scores = r._bm25_scores(bm25, query, bm25.rows)
    assert top and all(np.isclose(scores[n.node.node_id], n.score, rtol=1e-5) for n in top)
    assert max(scores.values()) == pytest.approx(top[0].score, rel=1e-5)
    assert min(scores.values()) == 0.0
    assert r._bm25_scores(bm25, "the and of", bm25.rows) == {}  # stop words only
