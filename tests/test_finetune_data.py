"""Data preparation: schemas, cleaning counts, seeded split, truncation, completion-only labels, pre-flight."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assistant.data import DatasetError
from assistant.finetuning.dataprep import IGNORE_INDEX, DataPrepError, prepare_data, render_example
from tests.helpers import qa_rows, write_jsonl


def cfg(dataset, **kw):
    base = dict(
        dataset=dataset,
        max_samples=None,
        eval_fraction=0.1,
        eval_samples=None,
        specialty=None,
        system_prompt=None,
        max_seq_length=512,
        seed=0,
    )
    return SimpleNamespace(**{**base, **kw})


@pytest.fixture(scope="module")
def tokenizer(settings):
    from assistant.models import load_tokenizer

    return load_tokenizer(None, settings)


def test_end_of_turn_token_carries_loss_and_the_prompt_none(tokenizer):
    ids, labels = render_example(tokenizer, "Be brief.", "I have a cough.", "Drink water.")
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    trained = [t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX]
    assert tokenizer.decode(trained).startswith("Drink water.")
    assert eot in trained  # the answer's end-of-turn is trained ...
    prompt_eots = [
        i for i, (t, lab) in enumerate(zip(ids, labels, strict=True)) if t == eot and lab == IGNORE_INDEX
    ]
    assert len(prompt_eots) == 2  # ... the system's and user's are not
    assert "I have a cough." not in tokenizer.decode(trained)


@pytest.mark.parametrize(
    "rows",
    [
        [
            {"Description": "Q about cough", "Patient": f"I cough, case {i}", "Doctor": f"Rest, case {i}"}
            for i in range(10)
        ],
        [{"question": f"What is flu {i}?", "answer": f"A viral infection {i}."} for i in range(10)],
        [
            {
                "messages": [
                    {"role": "user", "content": f"Hi {i}"},
                    {"role": "assistant", "content": f"Hello {i}"},
                ]
            }
            for i in range(10)
        ],
    ],
    ids=["chatbot", "qa", "messages"],
)
def test_known_schemas_are_detected_and_rendered(tmp_path, tokenizer, rows):
    data = prepare_data(cfg(write_jsonl(tmp_path / "d.jsonl", rows)), tokenizer, "<|im_end|>")
    assert data.counts.train + data.counts.eval == 10
    assert all(IGNORE_INDEX in row["labels"] for row in data.train)


def test_unknown_schema_lists_columns_and_known_schemas(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"foo": "a", "bar": "b"}])
    with pytest.raises(DatasetError) as err:
        prepare_data(cfg(path), tokenizer, "<|im_end|>")
    assert "['bar', 'foo']" in str(err.value) and "instruction" in str(err.value)


def test_duplicates_and_empty_rows_are_dropped_and_counted(tmp_path, tokenizer):
    rows = qa_rows(20)
    rows += [rows[0], rows[1], {**rows[2], "output": ""}, {**rows[3], "input": "   "}]
    data = prepare_data(cfg(write_jsonl(tmp_path / "d.jsonl", rows)), tokenizer, "<|im_end|>")
    assert (data.counts.rows, data.counts.duplicates, data.counts.empty) == (24, 2, 2)
    assert data.counts.train + data.counts.eval == 20
    assert data.system_prompt.startswith("If you are a doctor")  # the dataset's instruction


def test_split_is_seeded_disjoint_and_capped(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", qa_rows(40))
    a = prepare_data(cfg(path, eval_samples=8, max_samples=20), tokenizer, "<|im_end|>")
    b = prepare_data(cfg(path, eval_samples=8, max_samples=20), tokenizer, "<|im_end|>")
    c = prepare_data(cfg(path, eval_samples=8, max_samples=20, seed=1), tokenizer, "<|im_end|>")
    assert (a.counts.eval, a.counts.train, a.counts.over_max_samples) == (8, 20, 12)
    assert [p.question for p in a.eval_pairs] == [p.question for p in b.eval_pairs]
    assert [p.question for p in a.eval_pairs] != [p.question for p in c.eval_pairs]
    train_ids = {tuple(r) for r in a.train["input_ids"]}
    assert not train_ids & {tuple(r) for r in a.eval["input_ids"]}


def test_long_sequences_are_truncated_and_counted(tmp_path, tokenizer):
    rows = qa_rows(10)
    rows[0]["output"] = "word " * 400
    rows[1]["output"] = "word " * 400
    data = prepare_data(
        cfg(write_jsonl(tmp_path / "d.jsonl", rows), max_seq_length=128, eval_samples=1),
        tokenizer,
        "<|im_end|>",
    )
    assert data.counts.truncated == 2
    assert max(len(r) for r in data.train["input_ids"]) == 128


def test_preflight_refuses_when_the_end_of_turn_token_gets_no_loss(tmp_path, tokenizer):
    """A template that never closes the assistant turn: the model would never learn to stop."""
    broken = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    broken.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] }}"
        "{% if m['role'] != 'assistant' %}{{ '<|im_end|>\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    with pytest.raises(DataPrepError) as err:
        prepare_data(cfg(write_jsonl(tmp_path / "d.jsonl", qa_rows(10))), broken, "<|im_end|>")
    assert "never learn to stop" in str(err.value) and "[[" in str(err.value)


def test_empty_after_cleaning_is_a_clear_error(tmp_path, tokenizer):
    rows = [{"question": "", "answer": "x"}, {"question": "q", "answer": ""}]
    with pytest.raises(DataPrepError, match="2 empty"):
        prepare_data(cfg(write_jsonl(tmp_path / "d.jsonl", rows)), tokenizer, "<|im_end|>")


def test_specialty_filter_keeps_that_specialty_s_questions(settings):
    from assistant.data import Pair
    from assistant.finetuning.dataprep import filter_specialty

    pregnancy = [
        "I am 30 weeks pregnant and have swollen feet, is that normal?",
        "My baby is two weeks old and breastfeeding is painful, what should I do?",
        "Can I take folic acid while trying to get pregnant?",
    ]
    other = [
        "My eye is red and itchy since yesterday.",
        "I twisted my ankle playing football.",
        "I have chest pain when I climb stairs.",
    ]
    kept = filter_specialty([Pair(q, "a") for q in pregnancy + other], "pregnancy", settings)
    assert [p.question for p in kept] == pregnancy
