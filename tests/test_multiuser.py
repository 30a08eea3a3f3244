"""Multi-user mode for real: a local OpenID provider, Streamlit's st.login, and two people in two browsers.

The identity provider is oidc-provider-mock (a real OIDC server on loopback: discovery, authorization form, token
endpoint, signed ID tokens); the chat gets an ``[auth]`` section through ``--secrets.files``, exactly as the README's
team set-up does with .streamlit/secrets.toml.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, free_port, start_streamlit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium missing: `apt-get install chromium` (make test does)",
    ),
]

QUESTION = "Which foods give iron in pregnancy?"


@pytest.fixture
def provider():
    """A real OpenID provider on a free loopback port; yields its base URL."""
    oidc = pytest.importorskip("oidc_provider_mock", reason="pip install oidc-provider-mock (the dev extra)")
    with oidc.run_server_in_thread() as server:
        yield f"http://127.0.0.1:{server.server_port}"


def log_in(page, url: str, sub: str) -> None:
    """From the app's login page through the provider's authorization form back to the app, as ``sub``."""
    page.goto(url, timeout=120_000)
    page.get_by_role("button", name="Log in").click(timeout=300_000)
    page.locator("input[name=sub]").fill(sub, timeout=60_000)
    page.get_by_role("button", name="Authorize").click()
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=300_000)


def test_two_users_each_see_only_their_own_chat(ui_home, provider, tmp_path):
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text(
        "[auth]\n"
        f'redirect_uri = "{app}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "llama-md"\n'
        'client_secret = "test-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    proc = start_streamlit(
        ui_home,
        port,
        {"LLAMA_MD_MAX_NEW_TOKENS": "16", "LLAMA_MD_SPECIALTY": "pregnancy"},
        ["--secrets.files", str(secrets_toml)],
    )
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            stranger = browser.new_page()
            stranger.goto(app, timeout=120_000)
            stranger.get_by_role("button", name="Log in").wait_for(timeout=300_000)
            assert stranger.get_by_test_id("stChatInputTextArea").count() == 0  # no chat before logging in

            alice = browser.new_context().new_page()
            log_in(alice, app, "alice")
            box = alice.get_by_test_id("stChatInputTextArea")
            box.fill(QUESTION)
            box.press("Enter")
            alice.get_by_text(re.compile("ms to first token")).wait_for(timeout=300_000)
            alice_chat = parse_qs(urlparse(alice.url).query)["session"][0]
            alice.reload()
            alice.get_by_role("button", name=re.compile("Which foods give iron")).wait_for(timeout=120_000)

            bob = browser.new_context().new_page()
            log_in(bob, app, "bob")
            assert bob.get_by_role("button", name=re.compile("Which foods give iron")).count() == 0
            bob.goto(f"{app}/?session={alice_chat}", timeout=120_000)
            bob.get_by_text(re.compile("This chat was not found")).wait_for(timeout=120_000)
            bob_text = bob.inner_text("body")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert QUESTION not in bob_text  # refused: nothing of Alice's chat is shown to Bob

    from assistant.chat.history import ChatHistory

    history = ChatHistory(ui_home / "chats")
    owner = history.owner_of(alice_chat)
    assert owner is not None and owner.startswith("oidc:") and owner.endswith("|alice")
    assert history.messages(alice_chat, owner=owner)[0]["content"] == QUESTION
