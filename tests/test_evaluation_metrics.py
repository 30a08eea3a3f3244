"""Each evaluation metric on hand-made inputs with known answers."""

from __future__ import annotations

import pytest

from assistant.evaluation import metrics

YES_NO = {"A": "yes", "B": "no", "C": "maybe"}
MCQ = {
    "A": "A history of stroke or venous thromboembolism",
    "B": "Active or recurrent pelvic inflammatory disease (PID)",
    "C": "Past medical history of breast cancer",
    "D": "Known liver neoplasm",
}


def test_rouge_l_perfect_partial_and_disjoint():
    text = "Drink plenty of fluids and rest for two days."
    assert metrics.rouge_l(text, text) == pytest.approx(1.0)
    assert metrics.rouge_l("cats purr loudly", "dogs bark often") == 0.0
    assert metrics.rouge_l("", text) == 0.0
    # LCS "drink fluids rest" = 3 of 3 prediction tokens and 3 of 6 reference tokens: F1 = 2 * 1 * 0.5 / 1.5
    assert metrics.rouge_l("drink fluids rest", "drink some fluids and then rest") == pytest.approx(2 / 3)


def test_rouge_l_stems_words():
    assert metrics.rouge_l("running fevers", "run fever") == pytest.approx(1.0)


def test_semantic_similarity_orders_paraphrase_above_unrelated(embedder):
    ref = "Iron supplements are recommended during pregnancy to prevent anaemia."
    same, paraphrase, unrelated, empty = metrics.semantic_similarity(
        [
            ref,
            "Pregnant women should take iron tablets so they do not become anaemic.",
            "The stock market fell.",
            "",
        ],
        [ref] * 4,
        embedder,
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > 0.5 > unrelated
    assert empty == 0.0


def test_semantic_similarity_rejects_unequal_lists(embedder):
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        metrics.semantic_similarity(["a", "b"], ["a"], embedder)


def test_must_have_coverage_counts_statements_the_answer_states(embedder):
    statements = [
        "Escitalopram is an antidepressant of the SSRI class",
        "Side effects of escitalopram include nausea",
        "Lexapro is not approved for children under 12",
    ]
    answer = (
        "Escitalopram (Lexapro) is an SSRI antidepressant. Nausea is one of its side effects. "
        "It is not approved for children younger than 12."
    )
    assert metrics.must_have_coverage(answer, statements, embedder) == pytest.approx(1.0)
    partial = "Escitalopram is an SSRI antidepressant used for depression."
    assert metrics.must_have_coverage(partial, statements, embedder) == pytest.approx(1 / 3)
    assert metrics.must_have_coverage("Bananas are yellow fruit.", statements, embedder) == 0.0
    assert metrics.must_have_coverage("", statements, embedder) == 0.0
    assert metrics.must_have_coverage("anything", [], embedder) == 1.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Yes.", "A"),
        ("yes", "A"),
        ("No, because the trial was negative.", "B"),
        ("Maybe", "C"),
        ("The answer is B", "B"),
        ("Based on the evidence, the answer is no.", "B"),
        ("Answer: C", "C"),
        ("It is unclear from the literature.", None),
        ("The answer is a bit complex.", None),
        ("", None),
    ],
)
def test_parse_choice_yes_no(text, expected):
    assert metrics.parse_choice(text, YES_NO) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is B", "B"),
        ("B. Active or recurrent PID", "B"),
        ("(D) Known liver neoplasm", "D"),
        ("C) Past medical history", "C"),
        ("Option A is correct.", "A"),
        ("Active or recurrent pelvic inflammatory disease (PID) is a contraindication.", "B"),
        ("A copper IUD is a good choice for most women.", None),  # the article "A" is not a choice
        ("I would refer her to a gynecologist.", None),
    ],
)
def test_parse_choice_mcq(text, expected):
    assert metrics.parse_choice(text, MCQ) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Rest and drink fluids. If the fever lasts more than three days, see a doctor.", False),
        ("Answer: rest and drink fluids.", False),  # a leading label belongs to the first turn
        ("You should see your doctor, I think.", False),
        ("Rest and drink fluids.\nPatient: Thank you. I also have a cough.", True),
        ("Take paracetamol. Hi doctor, my son has a rash too.", True),
        ("Take paracetamol. Q: Can I take ibuprofen? A: Yes.", True),
        ("See a midwife. Doctor, I am 20 weeks pregnant and bleeding.", True),
        ("Rest.\n\nUser: what else?", True),
    ],
)
def test_runs_on_detects_invented_turns(text, expected):
    assert metrics.runs_on(text) is expected


def test_rates_and_majority():
    assert metrics.share([True, False, True, True]) == 0.75
    assert metrics.share([]) is None
    assert metrics.mean([1, 2, 3]) == 2
    assert metrics.majority_share(["A", "A", "B", "C"]) == 0.5
