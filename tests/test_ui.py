"""The Streamlit chat through AppTest with the real small model and a real Chroma store."""

from __future__ import annotations

import pytest

from tests.helpers import REPO

APP = str(REPO / "ui" / "app.py")


@pytest.fixture
def app(ui_home, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLAMA_MD_HOME", str(ui_home))
    monkeypatch.setenv("LLAMA_MD_SPECIALTY", "pregnancy")
    monkeypatch.setenv("LLAMA_MD_MAX_NEW_TOKENS", "48")
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def test_question_gets_a_streamed_answer_with_sources(app):
    app.chat_input[0].set_value("What should I eat during the third trimester?").run()
    assert not app.exception, app.exception
    answer = app.chat_message[-1]
    assert answer.name == "assistant" and answer.markdown[0].value.strip()
    labels = [e.label for e in answer.expander]
    assert labels and all("nutrition_guide.pdf, page" in label for label in labels)
    assert "page 1" in labels[0]


def test_compare_mode_gives_two_answers(app):
    app.toggle(key="compare").set_value(True).run()
    app.chat_input[0].set_value("Should newborns be breastfed?").run()
    assert not app.exception, app.exception
    columns = app.chat_message[-1].columns
    assert len(columns) == 2
    assert all(col.markdown[-1].value.strip() for col in columns)


def test_emergency_banner_comes_first(app):
    app.chat_input[0].set_value("I'm 34 weeks pregnant with a severe headache and blurry vision").run()
    message = app.chat_message[-1]
    assert message.error[0].value.startswith("**Possible pre-eclampsia.** This may be an emergency.")
    assert message.markdown[0].value.startswith("This may be an emergency. Call your local emergency number")


def test_a_crisis_gets_the_crisis_line_in_the_banner(app):
    app.chat_input[0].set_value(
        "everyone would be better off if I wasn't here, I've sorted out the pills"
    ).run()
    message = app.chat_message[-1]
    assert "988" in message.error[0].value and "988" in message.markdown[0].value


def test_upload_of_a_non_pdf_is_refused(app):
    app.file_uploader(key="uploads").set_value([("fake.pdf", b"just text", "application/pdf")]).run()
    app.button(key="ingest").click().run()
    assert any("content is not a PDF" in e.value for e in app.error)


def test_empty_question_gets_the_one_message(app):
    app.chat_input[0].set_value("   ").run()
    assert [w.value for w in app.warning] == [
        "The question is empty: type a question about your health or the documents."
    ]
