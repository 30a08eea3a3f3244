"""Page-by-page text extraction from PDFs with pypdf, and the cleaning that makes the text retrievable.

Cleaning, per page: words hyphenated across a line break are joined (``preg-\\nnancy`` -> ``pregnancy``),
runs of whitespace collapse to one space, and running headers and footers are dropped: a line among the first or
last ``EDGE_LINES`` lines of a page whose digit-blind form (``Page 12`` == ``Page 13``) appears on at least
``HEADER_MIN_SHARE`` of the pages (documents of ``HEADER_MIN_PAGES`` pages or more; 0.3 because
books alternate their even and odd page headers). Bare page numbers at page edges go the same way.

The printed page label (``xii``, ``A-3``) comes from the PDF's ``/PageLabels`` tree when it has one, else it is
the 1-based page number as text.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import LlamaMdError

logger = logging.getLogger(__name__)

EDGE_LINES = 2
HEADER_MIN_SHARE = 0.3
HEADER_MIN_PAGES = 4
_HYPHEN_BREAK = re.compile(r"(\w)-[ \t]*\n[ \t]*(\w)")
_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")


class PdfError(LlamaMdError):
    """A file can't be read as a PDF; ``status`` is ``"failed"`` (broken) or ``"skipped"`` (nothing to read)."""

    def __init__(self, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Page:
    """One page's cleaned text. ``number`` is 1-based; ``label`` is the printed label (e.g. ``xii``)."""

    number: int
    label: str
    text: str


@dataclass
class PdfText:
    """What a PDF yields: its pages with text (pages without text are counted, not listed)."""

    path: Path
    title: str
    page_count: int
    pages: list[Page] = field(default_factory=list)
    empty_pages: int = 0
    removed_lines: int = 0  # header/footer lines dropped


def _line_key(line: str) -> str:
    return _DIGITS.sub("#", _WHITESPACE.sub(" ", line).strip().lower())


def repeated_edge_lines(pages: list[str], edge_lines: int = EDGE_LINES) -> set[str]:
    """Digit-blind keys of lines at a page's top or bottom that repeat on most pages (running headers/footers).

    Args:
        pages: raw page texts (lines separated by ``\\n``).
        edge_lines: how many lines at each end of a page are candidates.

    Returns:
        Keys (see ``_line_key``) seen on at least ``HEADER_MIN_SHARE`` of the pages; empty for short documents.
    """
    if len(pages) < HEADER_MIN_PAGES:
        return set()
    counts: Counter[str] = Counter()
    for text in pages:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        edges = lines[:edge_lines] + lines[-edge_lines:]
        counts.update({_line_key(ln) for ln in edges})
    threshold = max(HEADER_MIN_PAGES - 1, HEADER_MIN_SHARE * len(pages))
    return {key for key, n in counts.items() if n >= threshold and key}


def clean_page(text: str, drop: set[str] = frozenset(), edge_lines: int = EDGE_LINES) -> tuple[str, int]:
    """Clean one page: drop header/footer lines whose key is in ``drop``, join hyphen breaks, collapse spaces.

    Returns:
        ``(clean text, number of lines dropped)``.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    removed = 0
    if drop and lines:
        n = len(lines)
        kept = []
        for i, line in enumerate(lines):
            at_edge = i < edge_lines or i >= n - edge_lines
            if at_edge and _line_key(line) in drop:
                removed += 1
                continue
            kept.append(line)
        lines = kept
    joined = _HYPHEN_BREAK.sub(r"\1\2", "\n".join(lines))
    return _WHITESPACE.sub(" ", joined).strip(), removed


def read_pdf(path: Path) -> PdfText:
    """Extract and clean the text of every page of a PDF.

    Args:
        path: a PDF file.

    Returns:
        PdfText with one Page per page that has text (1-based numbers, printed labels).

    Raises:
        PdfError: not a readable PDF (status "failed": corrupt or truncated), encrypted with a password other
            than the empty one, 0 pages, or no text layer on any page (status "skipped").
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    path = Path(path)
    try:
        with path.open("rb") as fh:
            if fh.read(1024).find(b"%PDF-") < 0:
                raise PdfError("not a PDF (no %PDF- header)", status="skipped")
        reader = PdfReader(path)
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except (PyPdfError, NotImplementedError, DependencyError) as exc:
                raise PdfError(f"encrypted and can't be opened: {exc}", status="skipped") from exc
            if not decrypted:
                raise PdfError(
                    "encrypted with a password (the empty password did not open it); "
                    "save an unprotected copy to ingest it",
                    status="skipped",
                )
        page_count = len(reader.pages)
        if page_count == 0:
            raise PdfError("the PDF has 0 pages", status="skipped")
        raw = [page.extract_text() or "" for page in reader.pages]
        labels = _page_labels(reader, page_count)
        title = _title(reader, path)
    except PdfError:
        raise
    except (
        Exception
    ) as exc:  # pypdf raises many types on broken files (PdfReadError, ValueError, KeyError...)
        raise PdfError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc

    drop = repeated_edge_lines(raw)
    result = PdfText(path=path, title=title, page_count=page_count)
    for number, (text, label) in enumerate(zip(raw, labels, strict=True), start=1):
        clean, removed = clean_page(text, drop)
        result.removed_lines += removed
        if len(clean) < 3:
            result.empty_pages += 1
            continue
        result.pages.append(Page(number=number, label=label, text=clean))
    if not result.pages:
        raise PdfError(
            f"no text layer on any of its {page_count} page(s) (a scan?); OCR it first "
            "(e.g. `ocrmypdf in.pdf out.pdf`) and ingest the result",
            status="skipped",
        )
    if drop:
        logger.debug("%s: dropped %d header/footer lines %s", path.name, result.removed_lines, sorted(drop))
    return result


def _page_labels(reader, page_count: int) -> list[str]:
    try:
        labels = list(reader.page_labels)
    except Exception:  # a broken /PageLabels tree must not lose the text
        labels = []
    if len(labels) != page_count:
        return [str(i) for i in range(1, page_count + 1)]
    return [str(label) or str(i) for i, label in enumerate(labels, start=1)]


def _title(reader, path: Path) -> str:
    try:
        title = (reader.metadata or {}).get("/Title") or ""
    except Exception:
        title = ""
    title = str(title).strip()
    if len(title) > 3:
        return title
    # a name that is not UTF-8 (bytes as surrogates) is written with \xNN escapes, which Chroma can store
    return os.fsencode(path.stem).decode("utf-8", "backslashreplace").replace("_", " ")
