"""A real browser (Debian's headless Chromium driven by Playwright) against `streamlit run` on loopback."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from assistant.chat.history import ChatHistory
from assistant.chat.users import local_user_id
from tests.helpers import CHROMIUM, ask_in_browser, free_port, start_streamlit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium missing: `apt-get install chromium` (make test does)",
    ),
]


def show_the_page(page, seen: dict) -> None:
    """Switch on the answer's first "Show page" and wait for the rendered page to load as an <img>."""
    message = page.get_by_test_id("stChatMessage").last
    message.get_by_text(re.compile(r"^Show page \d+$")).first.click()
    image = message.get_by_test_id("stImage").locator("img").first
    image.wait_for(timeout=120_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    seen["image_width"] = image.evaluate("img => img.naturalWidth")
    image.evaluate("img => img.scrollIntoView({block: 'start'})")  # the screenshot shows the page's top
    seen["session"] = parse_qs(urlparse(page.url).query)["session"][0]


def test_browser_asks_and_sees_an_answer_with_a_cited_page(ui_home, tmp_path):
    port = free_port()
    proc = start_streamlit(
        ui_home,
        port,
        {
            "LLAMA_MD_MAX_NEW_TOKENS": "48",
            "LLAMA_MD_SPECIALTY": "pregnancy",
            "LLAMA_MD_DATA_DIR": str(ui_home),  # its corpora/pregnancy/ holds the cited PDF
        },
    )
    seen: dict = {}
    try:
        shot = tmp_path / "chat.png"
        text = ask_in_browser(
            f"http://127.0.0.1:{port}",
            "What should I eat during the third trimester?",
            r"nutrition_guide\.pdf, page \d",
            shot,
            then=lambda page: show_the_page(page, seen),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "What should I eat during the third trimester?" in text
    assert re.search(r"nutrition_guide\.pdf, page 1", text)
    assert shot.stat().st_size > 10_000
    # the page image: the rendered PDF page (612 pt wide at 1.5 px/pt), cached in the home
    assert seen["image_width"] == 918
    assert list((ui_home / "cache" / "pages").rglob("p1-*.png"))
    # quoted evidence, whenever the answer has some (the stored answer says), shows as a quote with its page
    answer = ChatHistory(ui_home / "chats").messages(seen["session"], owner=local_user_id())[-1]
    for evidence in answer.get("evidence", []):
        label = evidence["page_label"] or evidence["page"]
        assert f"p. {label}: \u201c{evidence['sentence']}\u201d" in text
    if os.environ.get("LLAMA_MD_SCREENSHOT"):
        shutil.copy(shot, os.environ["LLAMA_MD_SCREENSHOT"])
