"""Serve GGUF generators over an OpenAI-compatible HTTP API with llama-cpp-python's server.

:class:`LlamaCppServer` starts ``python -m llama_cpp.server --config_file <json>`` in its own process group on
127.0.0.1 (a free port unless one is given), serving a fine-tuned run's GGUF as ``llama-md`` and the base model's
GGUF as ``llama-md-base``, waits until ``GET /v1/models`` answers, and stops the whole group on exit::

    with LlamaCppServer(gguf, base_gguf=base) as server:
        print(server.url)          # http://127.0.0.1:PORT/v1

Concurrency (llama-cpp-python 0.3.36, read in ``llama_cpp/server/app.py`` and ``model.py``): requests are
**serialized**. Every endpoint takes ``get_llama_proxy``, which holds two process-wide ``anyio.Lock`` s
(``llama_outer_lock``, ``llama_inner_lock``) for the whole request, streaming included, so one completion decodes at
a time and the others wait; there are no parallel slots and no continuous batching. Its ``interrupt_requests``
(default True) makes a waiting request *cancel* the one streaming (``if interrupt_requests and
llama_outer_lock.locked(): ... [DONE]``), which would cut one user's answer short when another asks: it is set to
False here, so requests queue instead. ``LlamaProxy`` also keeps **one** model in memory: asking for the other alias
closes the current ``Llama`` and loads the other (compare mode reloads the model on each switch; cheap for a 135M
model, not for a 7B). An unknown model name is answered by the default model, silently
(``LlamaProxy.__call__``), which is why :class:`~assistant.chat.remote.OpenAIGenerator` checks names itself.
For parallel decoding use the C++ ``llama-server`` of the vendored llama.cpp (``-np N`` slots with continuous
batching, ``--cont-batching``), or vLLM; not built here.

API key (issue #25): a server listening on anything but loopback requires one (:class:`ServingError` without it;
``llama-md serve`` generates one). Clients send it as ``Authorization: Bearer KEY``; both servers answer a request
without it with 401. The key reaches the server through a file in the server's private temporary folder (``0700``:
llama-cpp-python's config file, llama-server's ``--api-key-file``), never on a command line other accounts can
read in ``ps``. :func:`save_served_key` records it under ``<home>/serve/keys.json`` (``0600``) for the chat on this
machine, which sends it to that URL and no other (:func:`served_key`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

QUANTS = ("f16", "q8_0", "q4_k_m")  # what `python -m finetune export RUN --to gguf` writes


class ServingError(LlamaMdError, RuntimeError):
    """The model server can't start: llama-cpp-python missing, no GGUF, or the server died or never answered."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on at ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def run_gguf(run_dir: Path, quant: str | None = None) -> Path:
    """The GGUF that ``python -m finetune export RUN --to gguf`` wrote for ``run_dir``.

    Args:
        run_dir: a run folder (holding ``adapter/`` and ``export/gguf/``).
        quant: f16 | q8_0 | q4_k_m; None = the first present in that order.

    Raises:
        ServingError: no exported GGUF (names the export command).
    """
    folder = Path(run_dir) / "export" / "gguf"
    for q in [quant] if quant else QUANTS:
        path = folder / f"model-{q}.gguf"
        if path.is_file():
            return path
    found = sorted(p.name for p in folder.glob("*.gguf")) if folder.is_dir() else []
    raise ServingError(
        f"No exported GGUF {'model-' + quant + '.gguf' if quant else 'model-<quant>.gguf'} in {folder} "
        f"(found {found or 'nothing'}). Fix: `python -m finetune export {run_dir} --to gguf"
        f"{' --quant ' + quant if quant else ''}`, or serve a file with --gguf PATH."
    )


def server_config(
    models: dict[str, Path],
    *,
    host: str,
    port: int,
    n_ctx: int,
    n_threads: int | None,
    api_key: str | None = None,
) -> dict:
    """The ``--config_file`` of ``llama_cpp.server``: one entry per alias -> GGUF (the first is the default);
    ``api_key``: the key every request must send as ``Authorization: Bearer KEY`` (None: none)."""
    return {
        "host": host,
        "port": port,
        **({"api_key": api_key} if api_key else {}),
        "interrupt_requests": False,  # queue concurrent requests instead of cutting the streaming one short
        "models": [
            {
                "model": str(path),
                "model_alias": alias,
                "n_ctx": n_ctx,
                "n_threads": n_threads or max(1, (os.cpu_count() or 2) // 2),
                "verbose": False,
            }
            for alias, path in models.items()
        ],
    }


class LlamaCppServer:
    """llama-cpp-python's OpenAI-compatible server as a context manager (``start``/``stop``, ``url``)."""

    install_hint = "`make serve-setup`, or `CMAKE_ARGS=-DGGML_NATIVE=OFF .venv/bin/pip install 'llama-cpp-python[server]'`"

    @classmethod
    def available(cls) -> bool:
        """True when llama-cpp-python's server can be imported."""
        try:
            import llama_cpp.server  # noqa: F401 - only checks the install; the server runs in a subprocess
        except ImportError:
            return False
        return True

    def command(self, workdir: Path) -> list[str]:
        """The server's command line (its config file is written into ``workdir``)."""
        config = workdir / "server.json"
        cfg = server_config(
            self.models,
            host=self.host,
            port=self.port,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            api_key=self.api_key,
        )
        _write_private(config, json.dumps(cfg, indent=2))  # it may hold the API key
        return [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)]

    def __init__(
        self,
        gguf: Path,
        *,
        base_gguf: Path | None = None,
        served_model: str = "llama-md",
        served_base_model: str = "llama-md-base",
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        start_timeout_s: float = 120.0,
        log_path: Path | None = None,
        parallel: int = 1,
        api_key: str | None = None,
    ) -> None:
        """Configure the server (nothing starts until :meth:`start` or ``with``).

        Args:
            gguf: the model served as ``served_model``.
            base_gguf: the model served as ``served_base_model`` (compare mode); None = no base model (the same
                file may be given twice: the two names then serve one model).
            host: listen address; loopback unless exposing the server is meant.
            port: TCP port (default: a free one).
            n_ctx: context size per model, tokens.
            n_threads: decode threads (default: half the CPU cores).
            start_timeout_s: how long :meth:`start` waits for ``/v1/models``, seconds.
            log_path: the server's stdout+stderr (default: a temporary file).
            parallel: requests decoded at once (slots). llama-cpp-python decodes one at a time whatever this
                says (the module docstring); :class:`LlamaServer` gives each of ``parallel`` slots ``n_ctx``.
            api_key: the key every request must send (``Authorization: Bearer KEY``); None = none, allowed on a
                loopback ``host`` only.

        Raises:
            ServingError: ``host`` is not loopback and no ``api_key`` is given.
        """
        if not api_key and not is_loopback(host):
            raise ServingError(
                f"Serving on {host} lets anyone who can reach it use the model, so it needs an API key. Fix: pass "
                "--api-key KEY (or leave it out: `llama-md serve` then generates one and prints it), or serve on "
                "127.0.0.1."
            )
        self.api_key = api_key or None
        self.models = {served_model: Path(gguf)}
        if base_gguf is not None:
            self.models[served_base_model] = Path(base_gguf)
        self.host, self.port = host, port or free_port(host)
        self.n_ctx, self.n_threads, self.start_timeout_s = n_ctx, n_threads, start_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.parallel = max(1, parallel)
        self.process: subprocess.Popen | None = None
        self.start_s = 0.0  # seconds from spawn to the first answer of /v1/models

    @property
    def url(self) -> str:
        """Base URL of the OpenAI API, e.g. ``http://127.0.0.1:8080/v1``."""
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}/v1"

    def start(self) -> LlamaCppServer:
        """Spawn the server and wait until it lists its models.

        Raises:
            ServingError: llama-cpp-python's server is not installed, a GGUF is missing, or the server exited
                or didn't answer within ``start_timeout_s`` (with the tail of its log).
        """
        missing = [str(p) for p in self.models.values() if not p.is_file()]
        if missing:
            raise ServingError(
                f"GGUF file(s) not found: {missing}. Fix: pass an existing --gguf / --base-gguf."
            )
        if not self.available():
            raise ServingError(
                f"{type(self).__name__}: the server is not installed. Fix: {self.install_hint}."
            )
        workdir = Path(tempfile.mkdtemp(prefix="llama-md-serve-"))
        command = self.command(workdir)
        self.log_path = self.log_path or workdir / "server.log"
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends uvicorn and anything it spawned
            )
        logger.info("llama.cpp server pid %d on %s (log %s)", self.process.pid, self.url, self.log_path)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - started
        logger.info("llama.cpp server ready in %.1f s: %s", self.start_s, sorted(self.models))
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServingError(
                    f"The llama.cpp server exited with code {self.process.returncode} before answering. "
                    f"Its log ({self.log_path}) ends:\n{self.log_tail()}"
                )
            request = urllib.request.Request(f"{self.url}/models", headers=self.auth_headers())
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ServingError(
            f"The llama.cpp server did not answer {self.url}/models within {self.start_timeout_s:.0f} s. "
            f"Its log ({self.log_path}) ends:\n{self.log_tail()}\nFix: check the GGUF, or raise the timeout."
        )

    def auth_headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer KEY"}`` when the server has an API key, else ``{}``."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log."""
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout_s``; safe to call twice."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def llama_server_binary() -> Path:
    """Where ``make serve-setup`` puts llama.cpp's C++ server: ``$LLAMA_MD_LLAMA_CPP_DIR/bin/llama-server``."""
    folder = os.environ.get("LLAMA_MD_LLAMA_CPP_DIR") or Path.home() / ".cache/llama-md/llama.cpp/0.3.36"
    return Path(folder) / "bin" / "llama-server"


class LlamaServer(LlamaCppServer):
    """llama.cpp's own C++ ``llama-server`` (the vendored llama.cpp of llama-cpp-python 0.3.36, built with
    ``GGML_NATIVE=OFF``): ``parallel`` slots decoded together with continuous batching, one model per process.

    It serves ``served_model`` only; compare mode (a second model name) needs :class:`LlamaCppServer`.
    """

    install_hint = "`make serve-setup` (builds llama-server from llama-cpp-python's source distribution)"

    @classmethod
    def available(cls) -> bool:
        """True when the built ``llama-server`` binary is present."""
        return llama_server_binary().is_file()

    def command(self, workdir: Path) -> list[str]:
        (alias, gguf), *others = self.models.items()
        if others:
            logger.warning(
                "llama-server serves one model: %s is not served (compare mode needs llama-cpp-python)",
                [a for a, _ in others],
            )
            self.models = {alias: gguf}
        return [
            str(llama_server_binary()),
            "--model", str(gguf),
            "--alias", alias,
            "--host", self.host,
            "--port", str(self.port),
            "--parallel", str(self.parallel),
            "--ctx-size", str(self.n_ctx * self.parallel),  # the slots share the context: n_ctx each
            "--threads", str(self.n_threads or max(1, (os.cpu_count() or 2) // 2)),
            "--cont-batching",
            "--no-webui",
            *self._key_args(workdir),
        ]  # fmt: skip

    def _key_args(self, workdir: Path) -> list[str]:
        if not self.api_key:
            return []
        key_file = workdir / "api-key"
        _write_private(key_file, self.api_key + "\n")
        return ["--api-key-file", str(key_file)]


#: ``--engine`` names of the servers (``python -m assistant serve``, benchmarks/serve_bench.py).
SERVER_ENGINES = {"llama-cpp-python": LlamaCppServer, "llama-server": LlamaServer}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file ``path`` created ``0600``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


# The key the chat on this machine sends ----------------------------------------------------------------------


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the default port written out), lower case: what a key is bound to."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


#: Sent when no key is known: servers without --api-key (llama.cpp, vLLM) ignore it.
PLACEHOLDER_API_KEY = "sk-no-key-needed"


def client_api_key(home: Path, url: str, environ: dict | None = None) -> tuple[str, str]:
    """The API key the chat's ``openai`` backend sends to the server at ``url``, and where it came from: the key
    ``llama-md serve`` recorded for exactly that origin (:func:`served_key`), else ``OPENAI_API_KEY``, else
    :data:`PLACEHOLDER_API_KEY`.

    Args:
        home: the llama-md home (``Settings.home``).
        url: ``Settings.generator_url``.
        environ: the environment (default ``os.environ``).

    Returns:
        ``(key, source)``; ``source`` names the key for messages without showing it.
    """
    environ = os.environ if environ is None else environ
    recorded = served_key(home, url) if url else None
    if recorded:
        return recorded, f"the key `llama-md serve` recorded for {origin(url)} in {served_keys_path(home)}"
    if environ.get("OPENAI_API_KEY"):
        return environ["OPENAI_API_KEY"], "OPENAI_API_KEY"
    return PLACEHOLDER_API_KEY, "no key (neither OPENAI_API_KEY nor a key recorded by `llama-md serve`)"


def served_keys_path(home: Path) -> Path:
    """``<home>/serve/keys.json``: origin -> API key of the servers ``llama-md serve`` started with this home."""
    return Path(home) / "serve" / "keys.json"


def save_served_key(home: Path, url: str, api_key: str | None) -> Path:
    """Record ``api_key`` as the key of the server at ``url`` (None: forget any key recorded for it).

    The file and its folder are owner-only (``0600`` / ``0700``) and replaced atomically.

    Returns:
        The file's path.
    """
    from assistant.permissions import private_dir

    path = served_keys_path(home)
    private_dir(path.parent)
    keys = _read_keys(path)
    keys.pop(origin(url), None)
    if api_key:
        keys[origin(url)] = api_key
    tmp = path.with_name(f".keys-{os.getpid()}.json")
    _write_private(tmp, json.dumps(keys, indent=2))
    os.replace(tmp, path)
    return path


def served_key(home: Path, url: str) -> str | None:
    """The key ``llama-md serve`` recorded for the server at ``url``'s origin (scheme, host and port must all
    match: a key is never sent to another server), or None."""
    return _read_keys(served_keys_path(home)).get(origin(url))


def _read_keys(path: Path) -> dict[str, str]:
    try:
        keys = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}
