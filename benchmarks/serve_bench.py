"""In-process transformers vs llama.cpp servers on the exported GGUF: time to first token, decode speed, and 8
concurrent chats, on the same prompts in one run.

    LLAMA_MD_DATA_DIR=../shared .venv/bin/python -m benchmarks.serve_bench --home .llama-md \\
        --run .llama-md/runs/smollm2-135m-chatdoctor1k-v2 --json benchmarks/results/serve_bench.json

The prompts are what the chat sends: pregnancy questions composed by the answer path (retrieval over ``--home``'s
store, the run's system prompt and chat template), identical for every backend; the concurrent phase asks
``--questions`` other questions than the one-by-one phase, so no server answers it from a prompt cache. Backends:

* ``transformers``: the run's base + LoRA adapter in-process (bf16 where the CPU has it), the chat's default;
* ``llama-cpp-python/<quant>``: ``python -m assistant serve``'s server (llama-cpp-python, one request at a time)
  on ``RUN/export/gguf/model-<quant>.gguf``;
* ``llama-server/<quant>``: llama.cpp's C++ server with ``--parallel`` slots and continuous batching, when
  ``make serve-setup`` built it.

For each: every prompt alone, greedy, ``--max-new-tokens`` (time to first token; decode tokens/s = (new tokens - 1)
/ (total - time to first token)); then all prompts at the same moment from ``--concurrency`` threads (p50 / p95
time to first token, and total throughput = all new tokens / wall time). Decode speed-ups are ratios against the
transformers figure of the same run. One heavy job at a time: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

from assistant.config import load_settings

QUESTIONS = [
    "What should I eat during pregnancy?",
    "How much folic acid should I take when pregnant?",
    "Is it safe to exercise while pregnant?",
    "What are the signs of pre-eclampsia?",
    "How often should I breastfeed a newborn?",
    "What vaccines are recommended during pregnancy?",
    "How can I manage nausea in early pregnancy?",
    "How much weight should I gain during pregnancy?",
    "Can I drink coffee while pregnant?",
    "What causes anaemia in pregnancy?",
    "When should I go to hospital during labour?",
    "How do I know if my baby is moving enough?",
    "What is gestational diabetes?",
    "Is it normal to feel sad after giving birth?",
    "How can I prevent malaria in pregnancy?",
    "What should I do about back pain in pregnancy?",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def compose_prompts(settings, run: Path, n: int):
    """The in-process generator of ``run`` and the chat's messages for ``n`` questions (retrieval + the run's
    prompt format)."""
    from assistant.chat.answer import Assistant

    bot = Assistant.from_settings(settings, run)
    return bot.generator, [bot.compose_turn(q)[0].messages for q in (QUESTIONS * 4)[: 2 * n]]


def one_by_one(generator, prompts: list[list[dict]], max_new_tokens: int) -> dict:
    ttft, speed, tokens = [], [], []
    for messages in prompts:
        stream = generator.stream(messages, temperature=0.0, max_new_tokens=max_new_tokens)
        stream.text()
        stream.wait() if hasattr(stream, "wait") else None
        ttft.append(stream.stats.ttft_s)
        speed.append(stream.stats.tokens_per_s)
        tokens.append(stream.stats.new_tokens)
    return {
        "ttft_s_p50": round(statistics.median(ttft), 3),
        "decode_tokens_per_s": round(statistics.mean(speed), 1),
        "mean_new_tokens": round(statistics.mean(tokens), 1),
    }


def concurrent(generator, prompts: list[list[dict]], max_new_tokens: int) -> dict:
    results: list[tuple[float, int]] = [(0.0, 0)] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def chat(i: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        stream = generator.stream(prompts[i], temperature=0.0, max_new_tokens=max_new_tokens)
        first = None
        for piece in stream:
            if piece and first is None:
                first = time.perf_counter() - started
        stream.wait() if hasattr(stream, "wait") else None
        results[i] = (first or 0.0, stream.stats.new_tokens)

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(len(prompts))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ttft = [r[0] for r in results]
    return {
        "chats": len(prompts),
        "ttft_s_p50": round(statistics.median(ttft), 2),
        "ttft_s_p95": round(pct(ttft, 0.95), 2),
        "throughput_tokens_per_s": round(sum(r[1] for r in results) / wall, 1),
        "wall_s": round(wall, 1),
    }


def measure(name: str, generator, prompts, args) -> dict:
    one_by_one(generator, prompts[:1], 8)  # warm-up
    half = len(prompts) // 2
    figures = {"backend": name, "alone": one_by_one(generator, prompts[:half], args.max_new_tokens)}
    figures["concurrent"] = concurrent(generator, prompts[half:][: args.concurrency], args.max_new_tokens)
    print(name, json.dumps(figures))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".llama-md"))
    parser.add_argument("--run", type=Path, required=True, help="fine-tune run folder with export/gguf/")
    parser.add_argument("--quants", default="f16,q8_0", help="exported GGUFs to serve (default f16,q8_0)")
    parser.add_argument("--engines", default="llama-cpp-python,llama-server", help="servers to measure")
    parser.add_argument("--questions", type=int, default=8, help="prompts per phase (default 8)")
    parser.add_argument("--concurrency", type=int, default=8, help="chats at once (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tokens per answer (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="server decode threads (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from assistant.chat.remote import OpenAIGenerator
    from assistant.serving import SERVER_ENGINES, run_gguf

    settings = load_settings({"home": str(args.home)})
    local, prompts = compose_prompts(settings, args.run, args.questions)
    rows = [measure("transformers", local, prompts, args)]
    base_decode = rows[0]["alone"]["decode_tokens_per_s"]
    for engine in args.engines.split(","):
        for quant in args.quants.split(","):
            server_cls = SERVER_ENGINES[engine]
            if not server_cls.available():
                print(f"{engine}: not installed ({server_cls.install_hint}); skipped")
                continue
            with server_cls(
                run_gguf(args.run, quant), n_threads=args.threads, parallel=args.concurrency
            ) as srv:
                remote = OpenAIGenerator.from_settings(
                    load_settings(
                        {"home": str(args.home), "generator_backend": "openai", "generator_url": srv.url}
                    ),
                    args.run,
                )
                row = measure(f"{engine}/{quant}", remote, prompts, args)
                row["server_start_s"] = round(srv.start_s, 2)
                rows.append(row)
    for row in rows:
        row["decode_speedup"] = round(row["alone"]["decode_tokens_per_s"] / base_decode, 2)
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
