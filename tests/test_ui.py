"""The Streamlit chat through AppTest with the real small model and a real Chroma store."""

from __future__ import annotations

import pytest

from assistant.chat.users import local_user_id
from tests.helpers import REPO

APP = str(REPO / "ui" / "app.py")


@pytest.fixture
def app(ui_home, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLAMA_MD_HOME", str(ui_home))
    monkeypatch.setenv("LLAMA_MD_DATA_DIR", str(ui_home))  # its corpora/pregnancy/ holds the cited PDF
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
    assert answer.name == "assistant" and answer.text[0].value.strip()  # plain text, never Markdown
    labels = [e.label for e in answer.expander]
    assert labels and all("nutrition_guide.pdf, page" in label for label in labels)
    assert "page 1" in labels[0]


def test_compare_mode_gives_two_answers(app):
    app.toggle(key="compare").set_value(True).run()
    app.chat_input[0].set_value("Should newborns be breastfed?").run()
    assert not app.exception, app.exception
    columns = app.chat_message[-1].columns
    assert len(columns) == 2
    assert all(col.text[-1].value.strip() for col in columns)


def test_emergency_banner_comes_first(app):
    app.chat_input[0].set_value("I'm 34 weeks pregnant with a severe headache and blurry vision").run()
    message = app.chat_message[-1]
    assert message.error[0].value.startswith("**Possible pre-eclampsia.** This may be an emergency.")
    # the answer (after any quotes a low groundedness puts above it) opens with the emergency advice
    assert any(
        t.value.startswith("This may be an emergency. Call your local emergency number") for t in message.text
    )


def test_a_crisis_gets_the_crisis_line_in_the_banner(app):
    app.chat_input[0].set_value(
        "everyone would be better off if I wasn't here, I've sorted out the pills"
    ).run()
    message = app.chat_message[-1]
    assert "988" in message.error[0].value and any("988" in t.value for t in message.text)


def test_an_urgent_question_gets_the_amber_banner_quoting_its_sentence(app):
    question = "my back tooth has been throbbing for days and now my cheek and jaw on that side are swollen"
    app.chat_input[0].set_value(question).run()
    message = app.chat_message[-1]
    assert not message.error  # amber, not red
    assert message.warning[0].value.startswith(
        "**This should be checked today: a tooth infection with swelling"
    )
    assert f'You wrote: "{question}"' in message.warning[0].value


def test_upload_of_a_non_pdf_is_refused(app):
    app.file_uploader(key="uploads").set_value([("fake.pdf", b"just text", "application/pdf")]).run()
    app.button(key="ingest").click().run()
    assert any("content is not a PDF" in e.value for e in app.error)


def test_empty_question_gets_the_one_message(app):
    app.chat_input[0].set_value("   ").run()
    assert [w.value for w in app.warning] == [
        "The question is empty: type a question about your health or the documents."
    ]


OWNER = local_user_id()  # single-user mode: the machine's user owns every chat
IRON = "Daily oral iron and folic acid supplements are recommended for pregnant women to prevent maternal anaemia."


def stored_answer(home, details: dict) -> str:
    """A session whose answer (with ``details``) is already in the chat history; returns its id."""
    from assistant.chat.history import ChatHistory

    history = ChatHistory(home / "chats")
    sid = history.new_session(OWNER)
    history.add(sid, "user", "How much iron should I take?", owner=OWNER)
    source = {
        "number": 1,
        "file": "nutrition_guide.pdf",
        "page": 1,
        "page_label": "1",
        "score": 0.61,
        "text": "Nutrition in pregnancy. " + IRON,
        "title": "",
    }
    history.add(sid, "assistant", "Take 6 mg of iron a week [1].", [source], details, owner=OWNER)
    return sid


def reload(home, monkeypatch, sid):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLAMA_MD_HOME", str(home))
    monkeypatch.setenv("LLAMA_MD_DATA_DIR", str(home))
    monkeypatch.setenv("LLAMA_MD_SPECIALTY", "pregnancy")
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["session"] = sid
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_reloaded_answer_shows_its_quote_as_plain_text_and_its_page_on_demand(ui_home, monkeypatch):
    injected = IRON + " ![x](http://127.0.0.1:9/x.png) **bold**"
    evidence = [
        {
            "number": 1,
            "file": "nutrition_guide.pdf",
            "page": 1,
            "page_label": "1",
            "title": "Nutrition guide",
            "sentence": injected,
            "score": 0.8,
        }
    ]
    at = reload(ui_home, monkeypatch, stored_answer(ui_home, {"evidence": evidence, "groundedness": 0.83}))
    message = at.chat_message[-1]
    quote = f"From Nutrition guide, p. 1: \u201c{injected}\u201d"
    assert quote in [t.value for t in message.text]  # st.text: no Markdown, the image stays text
    assert not at.image
    texts = [t.value for t in message.text]
    assert texts[:2] == ["Take 6 mg of iron a week [1].", quote]  # the answer first, the quote under it
    assert any("supported: 83% of sentences" in m.value for m in message.markdown)

    message.toggle(key="m1-quote0").set_value(True).run()
    assert not at.exception, at.exception
    (image,) = at.image
    assert image.value[0].endswith(".png") and image.captions == [
        "nutrition_guide.pdf, page 1 (quoted sentence highlighted)"
    ]
    from assistant.rag.render import DEFAULT_SCALE, file_sha256, page_cache_path

    pdf = ui_home / "corpora" / "pregnancy" / "nutrition_guide.pdf"
    assert page_cache_path(
        file_sha256(pdf), 1, injected, ui_home / "cache" / "pages", DEFAULT_SCALE
    ).is_file()


def test_low_groundedness_leads_with_the_evidence_and_marks_unsupported_sentences(ui_home, monkeypatch):
    details = {
        "evidence": [
            {
                "number": 1,
                "file": "nutrition_guide.pdf",
                "page": 1,
                "page_label": "1",
                "title": "",
                "sentence": IRON,
                "score": 0.8,
            }
        ],
        "groundedness": 0.0,
        "unsupported": [
            {"sentence": "Take 6 mg of iron a week.", "quantities": ["6 mg"], "replaced_by": None}
        ],
        "flags": ["low_groundedness"],
    }
    at = reload(ui_home, monkeypatch, stored_answer(ui_home, details))
    message = at.chat_message[-1]
    texts = [t.value for t in message.text]
    assert texts.index("Take 6 mg of iron a week [1].") > 0  # the quote above the answer
    assert "From nutrition_guide.pdf, p. 1:" in texts[0]
    assert message.warning[0].value.startswith("A number in these sentences is not in any passage")
    assert any(t.value == "\u2022 \u201cTake 6 mg of iron a week.\u201d [6 mg]" for t in message.text)


def test_a_source_outside_the_library_folders_says_so_instead_of_a_page(ui_home, monkeypatch):
    sid = stored_answer(ui_home, {})
    from assistant.chat.history import ChatHistory

    history = ChatHistory(ui_home / "chats")
    evil = {
        "number": 1,
        "file": "../../etc/passwd.pdf",
        "page": 1,
        "page_label": "1",
        "title": "",
        "sentence": "x",
        "score": 0.5,
    }
    history.add(sid, "assistant", "Another answer.", [], {"evidence": [evil]}, owner=OWNER)
    at = reload(ui_home, monkeypatch, sid)
    at.chat_message[-1].toggle(key="m2-quote0").set_value(True).run()
    assert not at.exception and not at.image
    assert "not a plain PDF file name" in at.chat_message[-1].warning[0].value


def test_markdown_and_html_from_passages_and_answers_stay_text(ui_home, monkeypatch):
    """A passage (and an answer repeating it) holding a Markdown image, a link and HTML: shown as text, no image."""
    injected = "Iron matters. ![x](http://127.0.0.1:9/x.png) [click](javascript:alert(1)) <img src=x onerror=alert(1)>"
    sid = stored_answer(ui_home, {})
    from assistant.chat.history import ChatHistory

    source = {
        "number": 1,
        "file": "nutrition_guide.pdf",
        "page": 1,
        "page_label": "1",
        "score": 0.6,
        "text": injected,
        "title": "",
    }
    history = ChatHistory(ui_home / "chats")
    history.add(sid, "assistant", injected, [source], {}, owner=OWNER)
    other = history.new_session(OWNER)  # a chat whose title (its first question) holds the same Markdown
    history.add(other, "user", injected, owner=OWNER)
    at = reload(ui_home, monkeypatch, sid)
    titles = [b.label for b in at.sidebar.button if "Iron matters" in b.label]
    assert titles and all("\\!\\[x\\]" in t for t in titles)  # escaped: the sidebar shows it as text
    message = at.chat_message[-1]
    assert injected in [t.value for t in message.text]  # the answer
    assert injected in [t.value for t in message.expander[0].text]
    assert not at.image and not any("![x]" in m.value for m in at.markdown)
