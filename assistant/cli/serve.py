"""Serve the generator over an OpenAI-compatible API (llama.cpp) for the chat and evaluation.

    llama-md serve                                      # newest usable run's exported GGUF, or the bundled model
    llama-md serve --run .llama-md/runs/RUN --quant q4_k_m --port 8080
    llama-md serve --engine llama-server --parallel 4   # C++ llama-server: 4 answers decoded together
    llama-md serve --gguf model.gguf --base-gguf base.gguf --host 0.0.0.0   # generates and prints an API key
    LLAMA_MD_SERVE_API_KEY=$(cat key) llama-md serve --host 0.0.0.0        # or bring your own

Serves the run's GGUF (`python -m finetune export RUN --to gguf`) as 'llama-md' and the base model's GGUF as
'llama-md-base' (compare mode) on 127.0.0.1 until Ctrl-C, then points the chat at it:

    LLAMA_MD_GENERATOR_BACKEND=openai LLAMA_MD_GENERATOR_URL=http://127.0.0.1:8080/v1 llama-md chat "..."

Any address but loopback requires an API key: without ``--api-key`` (or ``LLAMA_MD_SERVE_API_KEY``) one is
generated (``secrets.token_urlsafe``, 256 bits) and printed once. The key is recorded in ``<home>/serve/keys.json``
(``0600``) for the URL printed, so a chat on this machine with the same home sends it by itself; elsewhere set
``OPENAI_API_KEY`` to it. Put TLS in front (docs/serving.md): over plain http the key and the prompts travel in clear.

Engines (assistant/serving.py): ``llama-cpp-python`` (the default) serves requests one at a time (a global lock per
request) and both model names, swapping the loaded model on demand; ``llama-server`` (llama.cpp's C++ server, built by
`make serve-setup`) decodes ``--parallel`` requests together with continuous batching but serves one model, so compare
mode needs the first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings, load_settings

DEFAULT_PORT = 8080


@dataclass
class ServeConfig:
    settings: Settings
    gguf: Path  # served as settings.served_model
    base_gguf: Path | None  # served as settings.served_base_model; None = not served
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    n_ctx: int = 2048  # context size, tokens
    threads: int | None = None  # decode threads (None: half the cores)
    start_timeout_s: float = 120.0
    engine: str = "llama-cpp-python"  # a key of assistant.serving.SERVER_ENGINES
    parallel: int = 4  # slots decoded together (llama-server); the chat admits as many answers at once
    api_key: str | None = None  # required off loopback; None there: config_from_args generated one
    api_key_generated: bool = False  # True when api_key was generated here (main prints it)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        default="auto",
        help="run folder whose export/gguf/ to serve (default auto: newest usable run)",
    )
    parser.add_argument(
        "--quant", choices=("f16", "q8_0", "q4_k_m"), help="which exported GGUF (default: first found)"
    )
    parser.add_argument("--gguf", type=Path, help="serve this GGUF file instead of a run's export")
    parser.add_argument(
        "--base-gguf",
        type=Path,
        help="GGUF of the base model (default: the bundled SmolLM2 when it is the base)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="listen address (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--n-ctx", type=int, default=2048, help="context size per model, tokens (default 2048)"
    )
    parser.add_argument("--threads", type=int, help="decode threads (default: half the CPU cores)")
    parser.add_argument(
        "--start-timeout-s", type=float, default=120.0, help="seconds to wait for the server (default 120)"
    )
    parser.add_argument(
        "--engine",
        choices=("llama-cpp-python", "llama-server"),
        default="llama-cpp-python",
        help="llama-cpp-python (one request at a time, base + fine-tuned names) or llama-server (C++, --parallel "
        "slots, one model) (default llama-cpp-python)",
    )
    parser.add_argument(
        "--parallel", type=int, default=4, help="requests decoded together by llama-server (default 4)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LLAMA_MD_SERVE_API_KEY") or None,
        help="key clients must send (Authorization: Bearer KEY); required off loopback, generated and printed "
        "when not given (default: $LLAMA_MD_SERVE_API_KEY; a key on the command line shows in `ps`)",
    )


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """Resolve which GGUF files to serve.

    Raises:
        ServingError: the run has no exported GGUF, or no GGUF at all can be found.
    """
    from assistant.adapters import select_adapter
    from assistant.config import EMBEDDED_GENERATOR
    from assistant.models import embedded_gguf_path, resolve_model_id
    from assistant.serving import ServingError, is_loopback, run_gguf

    settings = load_settings()
    base = resolve_model_id(settings.generator_model, EMBEDDED_GENERATOR)
    bundled = embedded_gguf_path() if base == EMBEDDED_GENERATOR else None
    base_gguf = args.base_gguf or bundled
    gguf = args.gguf
    if gguf is None:
        run = select_adapter(settings.runs_dir, base).adapter_dir if args.run == "auto" else Path(args.run)
        if run is not None:
            run = run.parent if run.name == "adapter" else run
            gguf = run_gguf(run, args.quant)
        elif base_gguf is not None:
            gguf = base_gguf  # no usable run: the chat uses the base model under both names
        else:
            raise ServingError(
                f"Nothing to serve: no usable run in {settings.runs_dir} and no GGUF of the base model {base}. "
                "Fix: pass --gguf PATH (and --base-gguf PATH), or `python -m finetune export RUN --to gguf`."
            )
    api_key, generated = args.api_key, False
    if not api_key and not is_loopback(args.host):
        api_key, generated = secrets.token_urlsafe(32), True
    return ServeConfig(
        settings,
        gguf,
        base_gguf,
        args.host,
        args.port,
        args.n_ctx,
        args.threads,
        args.start_timeout_s,
        args.engine,
        args.parallel,
        api_key,
        generated,
    )


def main(cfg: ServeConfig) -> int:
    """Start the server, print its URL, its API key when generated, and the settings for the chat, and serve until
    Ctrl-C (or SIGTERM). The key is recorded for the chat on this machine (``<home>/serve/keys.json``)."""
    from assistant.serving import SERVER_ENGINES, save_served_key

    s = cfg.settings
    server = SERVER_ENGINES[cfg.engine](
        cfg.gguf,
        base_gguf=cfg.base_gguf,
        served_model=s.served_model,
        served_base_model=s.served_base_model,
        host=cfg.host,
        port=cfg.port,
        n_ctx=cfg.n_ctx,
        n_threads=cfg.threads,
        start_timeout_s=cfg.start_timeout_s,
        parallel=cfg.parallel,
        api_key=cfg.api_key,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on SIGTERM too
    with server:
        for name, path in server.models.items():
            print(f"serving {name!r}: {path}", file=sys.stderr)
        print(f"llama.cpp server ready in {server.start_s:.1f} s at {server.url} (log {server.log_path})")
        keys = save_served_key(s.home, server.url, cfg.api_key)
        if cfg.api_key_generated:
            print(f"API key (generated; shown once): {cfg.api_key}")
        if cfg.api_key:
            print(
                f"requests must send it (Authorization: Bearer KEY); a chat with this home sends it by itself "
                f"({keys}), elsewhere set OPENAI_API_KEY to it"
            )
        print(
            f"point the chat at it:\n  LLAMA_MD_GENERATOR_BACKEND=openai LLAMA_MD_GENERATOR_URL={server.url}"
        )
        print("Ctrl-C stops it.", flush=True)
        try:
            code = server.process.wait()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
            return 0
        print(
            f"error: the server exited with code {code}; its log ends:\n{server.log_tail()}", file=sys.stderr
        )
        return 1
