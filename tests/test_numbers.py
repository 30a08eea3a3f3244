"""The number check: quantities of an answer against the passages given to the model (no model needed except for
the answer-path test, which uses the bundled embedder)."""

from __future__ import annotations

import pytest

from assistant.chat.answer import REMOVED, Answer, apply_number_check
from assistant.chat.evidence import Evidence
from assistant.chat.numbers import check_numbers, extract_quantities
from assistant.config import ConfigError, Settings
from tests.helpers import passage

PASSAGE = (
    "Daily oral iron and folic acid supplementation with 30 mg to 60 mg of elemental iron and 400 µg (0.4 mg) "
    "of folic acid is recommended for pregnant women. A model with a minimum of eight contacts is recommended. "
    "Exclusive breastfeeding for 6 months; 15% of women had anaemia. Give vitamin K 1 mg once after birth. "
    "Delay pushing for one to two hours."
)


def unsupported(answer: str, passages=(PASSAGE,)) -> list[str]:
    return [q.text for check in check_numbers(answer, list(passages)) for q in check.unsupported]


def test_a_wrong_dose_is_caught_and_a_right_one_kept():
    assert unsupported("Take 60 mg of elemental iron every day.") == []
    assert unsupported("Take 600 mg of elemental iron every day.") == ["600 mg"]
    assert unsupported("Take 60 milligrams of iron.") == []  # unit spelled out
    assert unsupported("Take 60 g of iron.") == ["60 g"]  # the value with another unit is not support


def test_units_convert_exactly_and_percent_and_weeks_are_handled():
    assert unsupported("Take 400 mcg of folic acid, which is 0.4 milligrams.") == []
    assert unsupported("Breastfeed only for 26 weeks.") == ["26 weeks"]  # 6 months is not 26 weeks exactly
    assert unsupported("Delay pushing up to 120 minutes.") == []  # two hours
    assert unsupported("About 15 per cent of women had anaemia.") == []
    assert unsupported("About 25% of women had anaemia.") == ["25%"]
    assert unsupported("Wait 6 wk.", ["Wait 42 days."]) == []


def test_number_words_frequencies_and_ranges():
    assert unsupported("Plan 8 contacts.") == [] and unsupported("Plan eight contacts.") == []
    assert unsupported("Plan nine contacts.") == ["nine"]
    assert unsupported("Give vitamin K twice.") == ["twice"]  # the page says once
    assert unsupported("Give vitamin K once, 1 mg.") == []
    assert unsupported("Take 30–60 mg of iron.") == [] and unsupported("Take 30-90 mg of iron.") == [
        "30-90 mg"
    ]
    assert unsupported("Delay pushing for 1 to 2 hours.") == []
    [q] = extract_quantities("about twenty-four hours")
    assert q.values == (24.0,) and q.unit == "time"
    assert [q.text for q in extract_quantities("a dose of 1,000 IU")] == ["1,000 IU"]


def test_citations_list_numbers_ordinals_and_the_pronoun_one_are_not_quantities():
    assert extract_quantities("1. Take iron [2] in the first trimester [1, 3].") == []
    assert extract_quantities("This is one of the best foods, from the 24th week.") == []
    assert [q.text for q in extract_quantities("Take one dose.")] == ["one dose"]


def quote() -> Evidence:
    return Evidence(1, "guide.pdf", 3, "3", "WHO guide (2025)", "Give vitamin K 1 mg once after birth.", 0.8)


@pytest.mark.parametrize("mode", ["replace", "mark", "off"])
def test_the_setting_decides_what_happens_to_an_unsupported_sentence(mode):
    text = "Give vitamin K 5 mg daily [1]. Breastfeed for 6 months. Take 900 mg of iron."
    answer = Answer("q", text=text, evidence=[quote()])
    apply_number_check(answer, [passage(PASSAGE, score=0.8, page=3, title="WHO guide (2025)")], mode)
    if mode == "off":
        assert answer.unsupported == [] and answer.text == text
        return
    assert [u["quantities"] for u in answer.unsupported] == [["5 mg"], ["900 mg"]]
    assert "unsupported_quantity" in answer.flags
    if mode == "mark":
        assert answer.text == text and all(u["replaced_by"] is None for u in answer.unsupported)
    else:
        first = "(From WHO guide (2025), p. 3: “Give vitamin K 1 mg once after birth.”)"
        assert answer.text == f"{first} Breastfeed for 6 months. {REMOVED}"
        assert [u["replaced_by"] for u in answer.unsupported] == [first, REMOVED]


def test_an_unknown_number_check_mode_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="number_check must be replace, mark or off.*LLAMA_MD_NUMBER_CHECK"):
        Settings(number_check="fix")


def test_a_number_from_the_question_or_a_page_header_is_not_unsupported():
    hit = passage(PASSAGE, score=0.8, page=42, title="WHO guide (2025)")
    answer = Answer("I am 12 weeks pregnant: how much iron?", text="At 12 weeks, see p. 42 of the guide.")
    apply_number_check(answer, [hit], "replace")
    assert answer.unsupported == [] and answer.text == "At 12 weeks, see p. 42 of the guide."
    wrong = Answer("How much iron?", text="At 13 weeks, take iron.")
    apply_number_check(wrong, [hit], "mark")
    assert [u["quantities"] for u in wrong.unsupported] == [["13 weeks"]]


def test_one_wrong_line_of_a_list_is_replaced_alone():
    text = "Doses:\n- vitamin K 1 mg once\n- iron 900 mg\n- breastfeed for 6 months"
    answer = Answer("q", text=text)
    apply_number_check(answer, [passage(PASSAGE)], "replace")
    assert [u["sentence"] for u in answer.unsupported] == ["- iron 900 mg"]
    assert answer.text == f"Doses:\n- vitamin K 1 mg once\n{REMOVED}\n- breastfeed for 6 months"
