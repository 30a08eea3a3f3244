import json

import pytest

from assistant.data import DatasetError, detect_schema, load_table, question_texts, to_pairs


def test_schemas_detected_and_pairs_built(tmp_path):
    rows = [
        {"Description": "Q about rash", "Patient": "I have a rash.", "Doctor": "Use a mild cream."},
        {"Description": "", "Patient": "", "Doctor": "Empty patient text."},
    ]
    path = tmp_path / "chatbot.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    table = load_table(path)
    pairs, schema = to_pairs(table)
    assert (
        schema == "chatbot"
        and pairs[0].question == "Q about rash\nI have a rash."
        and pairs[1].question == ""
    )
    assert detect_schema(["instruction", "input", "output"]) == "instruction"
    assert detect_schema(["question", "answer", "id"]) == "qa"
    assert detect_schema(["messages"]) == "messages"


def test_unknown_schema_lists_columns_and_known_schemas():
    with pytest.raises(DatasetError) as err:
        detect_schema(["foo", "bar"])
    assert "['bar', 'foo']" in str(err.value) and "instruction: {input, output, instruction}" in str(
        err.value
    )


def test_question_texts_skip_and_count_bad_values(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question,answer\nWhat is anemia?,Low iron\n   ,x\n")
    texts = question_texts(load_table(path))
    assert texts.texts == ["What is anemia?"] and texts.column == "question" and texts.skipped == {"empty": 1}
    with pytest.raises(DatasetError, match="the dataset has \\['question', 'answer'\\]"):
        question_texts(load_table(path), "body")


def test_messages_schema_uses_user_turns(tmp_path):
    path = tmp_path / "m.jsonl"
    msgs = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Is fever bad?"},
        {"role": "assistant", "content": "Sometimes."},
    ]
    path.write_text(json.dumps({"messages": msgs}))
    pairs, schema = to_pairs(load_table(path))
    assert (schema, pairs[0].question, pairs[0].answer, pairs[0].system) == (
        "messages",
        "Is fever bad?",
        "Sometimes.",
        "Be kind.",
    )
    assert question_texts(load_table(path)).texts == ["Is fever bad?"]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_table(tmp_path / "nope.json")
