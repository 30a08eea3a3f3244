"""Quoted evidence and groundedness: Punkt sentences, the bundled all-MiniLM-L6-v2, a real store from a written PDF."""

from __future__ import annotations

import pytest

from assistant.chat.evidence import PassageSentences, is_quotable, select_evidence, split_sentences
from assistant.chat.groundedness import groundedness
from assistant.config import load_settings
from tests.helpers import passage


def test_punkt_loads_its_trained_english_parameters_offline():
    # an untrained Punkt (what llama-index builds) splits after "Dr."; the trained English model does not
    assert split_sentences("Ask Dr. Smith about it at the\nnext visit. Then rest.") == [
        "Ask Dr. Smith about it at the next visit.",
        "Then rest.",
    ]


def test_fragments_headings_references_and_cut_off_pieces_are_not_quoted():
    assert is_quotable("Limit caffeine to 300 mg a day during pregnancy.")
    assert not is_quotable("Nutrition in pregnancy.")  # too short
    assert not is_quotable("WARNING SIGNS IN PREGNANCY AND WHAT TO DO")  # heading
    assert not is_quotable("Smith J, Jones K. Iron in pregnancy. Lancet (2019) 3: 4-5 with more words.")
    assert not is_quotable("92 1.5.4 WHO recommendation on calcium supplementation before pregnancy .")
    assert not is_quotable(
        "and newborns should be exclusively breastfed for six months."
    )  # starts mid-sentence
    assert not is_quotable("Daily oral iron and folic acid supplements are recommended for", last=True)
    assert not is_quotable("12.5 | 13.1 | 14.0 | 15.2 | 16.8 | 17.0 | 18.3 rate")  # table row


def test_the_answering_sentence_is_quoted_with_its_page_from_a_real_store(ui_home):
    from assistant.rag.retrieve import Retriever

    retriever = Retriever.from_settings(load_settings({"home": str(ui_home)}, environ={}))
    question = "How much caffeine a day is safe in pregnancy?"
    hits = retriever.retrieve(question, 3)
    quotes = select_evidence(question, hits, retriever.embed_model)
    assert quotes and quotes[0].sentence == "Limit caffeine to 300 mg a day."
    assert (quotes[0].file, quotes[0].page) == ("nutrition_guide.pdf", 1)
    assert quotes[0].number == 1 + [h.page for h in hits].index(1)
    assert quotes[0].to_json() == {
        "file": "nutrition_guide.pdf",
        "page": 1,
        "page_label": "1",
        "sentence": "Limit caffeine to 300 mg a day.",
        "score": round(quotes[0].score, 4),
    }


def test_near_duplicates_are_quoted_once_and_off_topic_sentences_not_at_all(embedder):
    text = (
        "Mothers should start breastfeeding within the first hour after birth. "
        "Mothers should start breastfeeding within the first hour after the birth. "
        "The clinic car park closes at nine in the evening every day."
    )
    passages = [passage(text), passage(text, page=2)]
    quotes = select_evidence("When should breastfeeding start after birth?", passages, embedder)
    assert len(quotes) == 1 and "first hour" in quotes[0].sentence and quotes[0].cosine >= 0.3
    assert select_evidence("How do I replace a diesel van's clutch?", passages, embedder) == []


def test_groundedness_is_the_share_of_answer_sentences_a_passage_supports(embedder):
    passages = [
        passage("Limit caffeine to 300 mg a day. Eat vegetables, fruit and whole grains every day."),
        passage("Severe headache with blurred vision needs urgent care at a health facility.", page=2),
    ]
    sentences = PassageSentences.from_passages(passages)
    answer = "You should limit caffeine to 300 mg each day. The moon orbits the earth once a month."
    assert groundedness(answer, sentences, embedder) == pytest.approx(0.5)
    assert (
        groundedness("A severe headache with blurred vision needs urgent care.", sentences, embedder) == 1.0
    )
    # cited: only passage [1] counts, which says nothing about headaches
    assert (
        groundedness("A severe headache with blurred vision needs urgent care [1].", sentences, embedder, [1])
        == 0.0
    )
    assert groundedness("Yes.", sentences, embedder) is None
