"""The medical retriever and re-ranker: training pairs, held-out exclusion, a real (tiny) build with the bundled
MiniLM, the alias in a real store, re-embedding that keeps every chunk, and re-ranking on the answer path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant.config import TRAINED_RERANKER, TRAINED_RETRIEVER, load_settings
from assistant.rag import pairs as P
from tests.helpers import TOPICS, topic_pages, write_jsonl, write_pdf

FOODS = ["iron", "calcium", "folic acid", "vitamin D", "iodine", "protein", "fibre", "omega-3"]


def tiny_data(root: Path) -> Path:
    """A data folder shaped like ../shared with a few MedQuAD rows and BioASQ questions (no corpora)."""
    for sub in ("datasets", "eval/retrieval"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    medquad = []
    for i, food in enumerate(FOODS):
        for qtype in ("information", "treatment"):
            medquad.append({
                "id": f"000{i}-{qtype[0]}", "collection": "5_NIDDK_QA", "focus": f"{food} deficiency", "qtype": qtype,
                "question": f"What is the {qtype} of {food} deficiency ?",
                "answer": f"{food.capitalize()} deficiency {qtype}: eat foods rich in {food} every day. " * 3,
            })  # fmt: skip
    write_jsonl(root / P.MEDQUAD, medquad)
    bioasq = [
        {"id": f"q{i:03d}", "question": f"Does {food} supplementation change outcome number {i}?",
         "snippets": [{"text": f"Trials of {food} supplementation in {i} cohorts found a modest effect."}]}
        for i, food in enumerate(FOODS * 3)
    ]  # fmt: skip
    write_jsonl(root / P.BIOASQ, bioasq)
    write_jsonl(
        root / P.MEDQUAD_SAMPLE,
        [{"qid": "5_0000-i", "question": "What is the information of iron deficiency ?"}],
    )
    return root


def test_bioasq_split_is_deterministic_and_holds_out_about_a_fifth():
    ids = [f"5e{i:06x}" for i in range(2000)]
    held = [i for i in ids if P.bioasq_split(i) == "eval"]
    assert [P.bioasq_split(i) for i in ids] == [P.bioasq_split(i) for i in ids]
    assert 0.17 < len(held) / len(ids) < 0.23


def test_held_out_questions_are_dropped_by_text_and_by_near_duplicate(embedder):
    def embed(texts):
        return embedder.encode(list(texts), normalize_embeddings=True)

    pairs = [
        P.Pair(
            "How much iron should I take when pregnant?", "p1", "medquad", "g1"
        ),  # a copy, other punctuation
        P.Pair("how much iron should i take when pregnant", "p2", "medquad", "g2"),
        P.Pair("How much iron do I need to take while I am pregnant?", "p3", "medquad", "g3"),  # a paraphrase
        P.Pair("What causes kidney stones in adults?", "p4", "medquad", "g4"),
    ]
    kept, dropped = P.drop_held_out(pairs, ["How much iron should I take when pregnant?!"], embed)
    assert [p.query for p in kept] == ["What causes kidney stones in adults?"] and dropped == 3


def test_inverse_cloze_pairs_remove_the_sentence_and_skip_reference_lists():
    prose = (
        "Pregnant women should take 30 to 60 mg of elemental iron every day. Iron prevents anaemia in the mother. "
        "Folic acid taken before conception reduces neural tube defects. Calcium lowers the risk of pre-eclampsia "
        "in women with low dietary calcium."
    )
    references = "Smith J et al. Iron in pregnancy. Lancet (2019) 3: 4-5. Jones K et al. Folate. BMJ (2020) 1: 2-3. See doi 10.1/x."
    pairs = P.ict_pairs(
        [{"text": prose, "file": "a.pdf", "page": 3}, {"text": references, "file": "a.pdf", "page": 9}], 10, 0
    )
    assert len(pairs) == 1 and pairs[0].group == "ict:a.pdf:3"
    assert pairs[0].query in prose and pairs[0].query not in pairs[0].positive


def test_mined_negatives_come_from_other_documents(embedder, tmp_path):
    data = tiny_data(tmp_path)
    pairs = P.medquad_pairs(data, 100, 0, held_ids={"5_0000-i"})
    assert len(pairs) == 15  # 16 rows, the held-out qid out
    mined = P.mine_negatives(pairs, embedder)
    assert mined and all(p.negative and p.negative != p.positive for p in mined)
    by_text = {p.positive: p.group for p in pairs}
    assert all(by_text[p.negative] != p.group for p in mined)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real build of both models on tiny data (a few training steps), in a temporary model cache."""
    from assistant.rag import trained

    root = tmp_path_factory.mktemp("retriever-build")
    patch = pytest.MonkeyPatch()
    patch.setenv("LLAMA_MD_MODEL_CACHE", str(root / "cache"))
    for name, value in (("MEDQUAD_PAIRS", 12), ("BIOASQ_PAIRS", 12), ("ICT_PAIRS", 8), ("BATCH_SIZE", 4)):
        patch.setattr(trained, name, value)
    settings = load_settings(
        {"home": str(root / "home"), "data_dir": str(tiny_data(root / "data"))}, environ={}
    )
    reports = trained.build_models(settings)
    yield settings, reports
    patch.undo()


def test_build_writes_safetensors_is_cached_and_resolves_by_alias(built):
    from assistant.models import embedder_identity, trained_model_dir
    from assistant.rag.trained import build_models

    settings, reports = built
    for kind, alias in (("retriever", TRAINED_RETRIEVER), ("reranker", TRAINED_RERANKER)):
        folder = reports[kind].folder
        assert not reports[kind].cached and list(folder.glob("*.safetensors")) + list(
            folder.glob("*/*.safetensors")
        )
        assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pkl"))
        assert trained_model_dir(alias) == folder
        assert json.loads((folder / "llama-md-training.json").read_text())["fingerprint"] == folder.name
    again = build_models(settings)
    assert all(r.cached for r in again.values())
    medical = replace(settings, embedding_model=TRAINED_RETRIEVER)
    assert embedder_identity(medical) == f"{TRAINED_RETRIEVER}@{reports['retriever'].folder.name}"


def test_a_store_records_its_embedder_refuses_mixing_and_reembeds_keeping_every_chunk(built, tmp_path):
    from assistant.rag.ingest import ingest_paths
    from assistant.rag.reembed import reembed_store
    from assistant.rag.retrieve import Retriever
    from assistant.rag.store import StoreError, open_collection

    settings, _ = built
    base = replace(settings, home=tmp_path / "home")
    write_pdf(tmp_path / "in" / "one.pdf", topic_pages(0, 3))
    ingest_paths([tmp_path / "in"], base, specialty="pregnancy")
    before = open_collection(base).get(include=["documents", "metadatas", "embeddings"])
    medical = replace(base, embedding_model=TRAINED_RETRIEVER)
    with pytest.raises(StoreError, match="llama-md retriever reembed"):
        open_collection(medical)
    report = reembed_store(medical, show_progress=False)
    after = open_collection(medical).get(include=["documents", "metadatas", "embeddings"])
    assert report.chunks == len(before["ids"]) and sorted(after["ids"]) == sorted(before["ids"])
    rows_before = dict(
        zip(before["ids"], zip(before["documents"], before["metadatas"], strict=True), strict=True)
    )
    for i, doc, meta, vec in zip(
        after["ids"], after["documents"], after["metadatas"], after["embeddings"], strict=True
    ):
        assert (doc, meta) == rows_before[i] and meta["specialty"] == "pregnancy"
        assert not np.allclose(vec, before["embeddings"][before["ids"].index(i)])
    assert open_collection(medical).metadata["embedding_model"].startswith(TRAINED_RETRIEVER + "@")
    with pytest.raises(StoreError, match="was built with embedding model"):
        open_collection(base)  # the store now belongs to the trained retriever
    hits = Retriever.from_settings(replace(medical, rerank="off")).retrieve(
        " ".join(TOPICS[1].split()[:6]), 3
    )
    assert hits and hits[0].file == "one.pdf"


def test_the_reranker_orders_candidates_and_keeps_cosine_scores(built):
    from assistant.rag.rerank import load_reranker
    from assistant.rag.retrieve import Hit

    settings, _ = built
    reranker = load_reranker(replace(settings, rerank="on"))
    hits = [Hit(f"text {i}", 0.4 + i / 100, "a.pdf", i, str(i), "pregnancy", "", f"c{i}") for i in range(6)]
    out = reranker.rerank("iron in pregnancy", hits, 3)
    probs = reranker.scores("iron in pregnancy", [h.text for h in hits])
    assert [h.chunk_id for h in out] == [hits[i].chunk_id for i in np.argsort(-probs, kind="stable")[:3]]
    assert all(0 <= h.rerank <= 1 and h.score == hits[int(h.chunk_id[1:])].score for h in out)
    assert load_reranker(replace(settings, rerank="off")) is None


def test_rerank_on_without_a_built_reranker_says_how_to_build_it(tmp_path, monkeypatch):
    from assistant.models import TrainedModelError
    from assistant.rag.rerank import load_reranker

    monkeypatch.setenv("LLAMA_MD_MODEL_CACHE", str(tmp_path / "empty"))
    settings = load_settings({"home": str(tmp_path), "rerank": "on"}, environ={})
    with pytest.raises(TrainedModelError, match="llama-md retriever train"):
        load_reranker(settings)
    assert load_reranker(replace(settings, rerank="auto")) is None
