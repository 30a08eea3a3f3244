"""Many people at once: real browsers asking the Streamlit chat at the same moment.

    LLAMA_MD_DATA_DIR=../shared .venv/bin/python -m benchmarks.chat_load --home .llama-md
    .venv/bin/python -m benchmarks.chat_load --home .llama-md --sessions 8 --close 4 --max-new-tokens 96
    LLAMA_MD_GENERATOR_BACKEND=openai LLAMA_MD_GENERATOR_URL=http://127.0.0.1:8080/v1 \\
        .venv/bin/python -m benchmarks.chat_load --home .llama-md            # through `python -m assistant serve`

Starts ``streamlit run ui/app.py`` on loopback with ``--home`` (its store and adapter), then one Debian Chromium
with one Playwright context per session (separate cookies and Streamlit sessions, like separate people). Three
phases, one after another:

1. ``--sessions 1``-style baseline: one session asks alone.
2. ``--sessions`` sessions type their question and press Enter at the same moment; each records the time to the
   first streamed answer text and to the full answer (the timing caption under it), from its own Enter. All must be
   answered with no error shown.
3. The same, but ``--close`` sessions close their tab as soon as their answer starts streaming (mid-answer). Then
   the server process's CPU time is sampled every 0.25 s: the figure is how long after the last live answer ended
   the server went idle (under 5% of one core). The server's log says how many tokens each abandoned answer had
   generated when it was cancelled ("Generation cancelled after N new tokens"): the proof that closing a tab stops
   its answer, whatever its place in the queue.

Prints p50 / p95 / max per phase and writes them to ``--json`` when given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, free_port, start_streamlit
from benchmarks.serve_bench import QUESTIONS

ANSWER_TEXT_JS = """() => {
  const msgs = [...document.querySelectorAll('[data-testid="stChatMessage"]')];
  if (msgs.length < 2) return false;
  const last = msgs[msgs.length - 1];
  return [...last.querySelectorAll('[data-testid="stText"]')].some(e => e.innerText.trim().length > 0);
}"""
DONE_JS = """() => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
  .some(e => e.innerText.includes('ms to first token'))"""
ERROR_JS = """() => document.querySelectorAll('[data-testid="stException"], [data-testid="stAlertContentError"]').length"""


def percentiles(values: list[float]) -> dict:
    """p50 / p95 / max of ``values`` (seconds), or empty when there are none."""
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2), "max": round(ordered[-1], 2)}


async def open_session(browser, url: str):
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    await page.goto(url, timeout=300_000)
    await page.get_by_test_id("stChatInputTextArea").wait_for(timeout=300_000)
    return context, page


async def ask(page, question: str, close_mid_answer: bool, start: asyncio.Event) -> dict:
    """Ask ``question`` once ``start`` is set; returns the session's timings (s) or that it closed mid-answer."""
    box = page.get_by_test_id("stChatInputTextArea")
    await box.fill(question)
    await start.wait()
    t0 = time.perf_counter()
    await box.press("Enter")
    await page.wait_for_function(ANSWER_TEXT_JS, timeout=900_000, polling=100)
    first = time.perf_counter() - t0
    if close_mid_answer:
        await page.close()
        return {"first_text_s": first, "closed": True}
    await page.wait_for_function(DONE_JS, timeout=900_000, polling=100)
    total = time.perf_counter() - t0
    errors = await page.evaluate(ERROR_JS)
    return {"first_text_s": first, "answer_s": total, "errors": errors, "done_at": time.perf_counter()}


def server_tree(proc: psutil.Process) -> list[psutil.Process]:
    return [proc, *proc.children(recursive=True)]


def wait_idle(proc: psutil.Process, since: float, limit_s: float = 60.0) -> float | None:
    """Seconds from ``since`` until a 0.25 s window in which the server used < 5% of one core; None past limit."""
    while time.perf_counter() - since < limit_s:
        before = sum(p.cpu_times().user + p.cpu_times().system for p in server_tree(proc))
        time.sleep(0.25)
        after = sum(p.cpu_times().user + p.cpu_times().system for p in server_tree(proc))
        if (after - before) / 0.25 < 0.05:
            return round(time.perf_counter() - since - 0.25, 2)
    return None


CANCELLED = re.compile(r"Generation cancelled after (\d+) new tokens \(([\d.]+) s\)")


async def phase(url: str, sessions: int, close: int, server: psutil.Process, log: Path) -> dict:
    from playwright.async_api import async_playwright

    log_start = log.stat().st_size
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        opened = [await open_session(browser, url) for _ in range(sessions)]
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(ask(page, QUESTIONS[i % len(QUESTIONS)], i < close, start))
            for i, (_, page) in enumerate(opened)
        ]
        await asyncio.sleep(0.5)
        start.set()
        results = await asyncio.gather(*tasks)
        live = [r for r in results if not r.get("closed")]
        last_done = max(r["done_at"] for r in live) if live else time.perf_counter()
        idle_after = await asyncio.to_thread(wait_idle, server, last_done)
        await browser.close()
    with log.open("rb") as fh:
        fh.seek(log_start)
        cancelled = [(int(n), float(s)) for n, s in CANCELLED.findall(fh.read().decode(errors="replace"))]
    return {
        "sessions": sessions,
        "closed_mid_answer": close,
        "answered": len(live),
        "errors": sum(r.get("errors", 0) for r in live),
        "first_text_s": percentiles([r["first_text_s"] for r in results]),
        "answer_s": percentiles([r["answer_s"] for r in live]),
        "idle_after_last_answer_s": idle_after,
        "cancelled_answers": len(cancelled),
        "cancelled_new_tokens": [n for n, _ in cancelled],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", type=Path, default=Path(".llama-md"), help="llama-md home with store + runs"
    )
    parser.add_argument("--sessions", type=int, default=8, help="browser sessions asking at once (default 8)")
    parser.add_argument(
        "--close", type=int, default=4, help="sessions closing their tab mid-answer (phase 3)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length cap (default 128)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="chat-load-")) / "streamlit.log"
    env = {"LLAMA_MD_MAX_NEW_TOKENS": str(args.max_new_tokens)}
    proc = start_streamlit(args.home.resolve(), port, env, log_path=log)
    url = f"http://127.0.0.1:{port}"
    server = psutil.Process(proc.pid)
    try:
        figures = {"max_new_tokens": args.max_new_tokens}
        asyncio.run(phase(url, 1, 0, server, log))  # warm-up: the first question loads the models
        for name, (n, close) in {
            "one_session": (1, 0),
            "concurrent": (args.sessions, 0),
            "concurrent_with_closed_tabs": (args.sessions, args.close),
        }.items():
            figures[name] = asyncio.run(phase(url, n, close, server, log))
            print(name, json.dumps(figures[name]))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"server log: {log}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
