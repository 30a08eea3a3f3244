"""Cited-page rendering: milliseconds per page, cold and cached, and how often the quoted sentence is found.

    LLAMA_MD_DATA_DIR=../shared .venv/bin/python -m benchmarks.page_render_bench
    LLAMA_MD_DATA_DIR=../shared .venv/bin/python -m benchmarks.page_render_bench --pages-per-file 10 --scale 2

For each PDF of the corpus, ``--pages-per-file`` pages spread over the file; on each, the longest sentence of the
page as ingest extracts it (pypdf, cleaned: the text evidence sentences are cut from) is the highlight. Prints the
median and 90th percentile of :func:`assistant.rag.render.render_page` cold (empty cache: pdfium render, text search,
PNG write) and cached, and the share of sentences found (whole-sentence search or word runs; see the module
docstring of assistant/rag/render.py). CPU only, one thread.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from assistant.config import load_settings
from assistant.rag.pdf import read_pdf
from assistant.rag.render import DEFAULT_SCALE, find_sentence, render_page
from corpora import resolve_corpus

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def longest_sentence(text: str) -> str | None:
    """The page's longest sentence of 6 to 60 words, or None."""
    sentences = [s for s in _SENTENCE.split(text) if 6 <= len(s.split()) <= 60]
    return max(sentences, key=len, default=None)


def found(pdf_path: Path, page: int, sentence: str) -> tuple[bool, bool]:
    """(found at all, found as one whole-sentence match)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf_path)
    textpage = doc[page - 1].get_textpage()
    spans = find_sentence(textpage, sentence)
    doc.close()
    return bool(spans), len(spans) == 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--specialty", default="pregnancy", help="corpus to render (default pregnancy)")
    parser.add_argument("--pages-per-file", type=int, default=6, help="pages per PDF (default 6)")
    parser.add_argument(
        "--scale", type=float, default=DEFAULT_SCALE, help="pixels per PDF point (default 1.5)"
    )
    args = parser.parse_args()
    settings = load_settings()
    cache = Path(tempfile.mkdtemp(prefix="llama-md-pages-bench-"))
    cold, cached, hits, whole, total = [], [], 0, 0, 0
    try:
        for path in resolve_corpus(args.specialty, settings.data_dir, download=False):
            pages = read_pdf(path).pages
            step = max(1, len(pages) // args.pages_per_file)
            for page in pages[::step][: args.pages_per_file]:
                sentence = longest_sentence(page.text)
                if sentence is None:
                    continue
                t0 = time.perf_counter()
                render_page(path, page.number, highlight=sentence, cache_dir=cache, scale=args.scale)
                t1 = time.perf_counter()
                render_page(path, page.number, highlight=sentence, cache_dir=cache, scale=args.scale)
                t2 = time.perf_counter()
                cold.append((t1 - t0) * 1000)
                cached.append((t2 - t1) * 1000)
                any_match, one = found(path, page.number, sentence)
                hits, whole, total = hits + any_match, whole + one, total + 1
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]

    print(f"{total} pages of {args.specialty}, scale {args.scale:g} px/pt\n")
    print("| render_page | median ms | p90 ms |\n|---|---|---|")
    print(f"| cold (render + search + PNG) | {statistics.median(cold):.0f} | {p90(cold):.0f} |")
    print(f"| cached | {statistics.median(cached):.2f} | {p90(cached):.2f} |")
    print(
        f"\nsentence found: {hits}/{total} ({hits / total:.0%}); as one whole-sentence match: {whole}/{total}"
    )


if __name__ == "__main__":
    main()
