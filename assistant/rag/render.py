"""The cited page, seen: a source's PDF page rendered to PNG with the quoted sentence highlighted.

    from assistant.rag.render import find_pdf, render_page
    png = render_page(find_pdf("WHO_recommendations_newborn_health_2017.pdf", settings), 42,
                      highlight="Newborns should be ...", cache_dir=settings.cache_dir / "pages")

Where a source's file is looked for (:func:`find_pdf`): the file names in the store come from PDFs and uploads, so
they are untrusted. A name must be a plain file name ending in ``.pdf`` (no folder part, no ``..``, no NUL, no
backslash), and it is looked up only in ``<data_dir>/corpora/<specialty>/`` (the specialties whose manifest lists
the file, then the chosen one); a candidate whose resolved path (symlinks followed) leaves its folder is refused.
Nothing else on disk is ever opened. A user's own uploads are opened from their own folder only
(:func:`assistant.chat.uploads.upload_path`); the flat ``<home>/uploads/`` of uploads from before per-user stores is
never searched (issue #25: anyone could see such a file's pages by naming it; the chat moves or deletes those files
at start, :mod:`assistant.chat.retention`).

How the sentence is found (:func:`find_sentence`): pdfium's text-page search (``PdfTextPage.search``, case-blind)
matches across line breaks and runs of spaces, so the whole sentence is searched first. When it is not found as a
whole (ingest joins words hyphenated across lines, ``preg-`` + ``nancy``; a ligature or a quote mark may differ),
the sentence is matched as successive word runs: the first run must be at least ``MIN_ANCHOR_WORDS`` words long
(so that "the" never anchors it) and each next run must start within ``MAX_GAP_CHARS`` characters (plus the
length of the words skipped) of the previous one's end; words that match nowhere are skipped. The highlight is
drawn only when the runs cover at least ``MIN_COVERED_SHARE`` of the sentence's words; otherwise the page is
shown plain. Boxes are pdfium's text rectangles (one per line segment), mapped to pixels with
``FPDF_PageToDevice`` (so page rotation and crop boxes are honoured) and drawn as translucent yellow with Pillow.

Cache: ``<cache_dir>/<file sha256>/p<page>-<highlight hash or "plain">-x<scale>.png``, written to a temporary
file (``0600``, in ``0700`` folders: a rendered page of an upload is that user's data) and renamed into place, so
a reader never sees half a PNG; a cached image is returned without opening the
PDF. pdfium is not thread-safe (pypdfium2's documentation), so every pdfium call holds one process-wide lock.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from assistant.config import Settings
from assistant.errors import LlamaMdError
from assistant.permissions import private_dir

logger = logging.getLogger(__name__)

DEFAULT_SCALE = 1.5  # pixels per PDF point: 108 dpi, an A4 page is 893 x 1263 px
MAX_SCALE = 4.0
HIGHLIGHT_RGBA = (255, 214, 0, 96)  # translucent yellow
HIGHLIGHT_PAD_PX = 2
MIN_ANCHOR_WORDS = 3
MAX_GAP_CHARS = 6  # a line break ("\r\n") and spaces between two runs of one sentence
MIN_COVERED_SHARE = 0.5
MAX_ANCHORS = 200  # occurrences of the first run tried before giving up

_PDFIUM = threading.Lock()
_SHA_MEMO: dict[tuple[str, int, int], str] = {}

Box = tuple[float, float, float, float]  # (left, bottom, right, top) in PDF points


class PageViewError(LlamaMdError, RuntimeError):
    """A source's page can't be shown; the message says which file or page and how to fix it."""


class SourceFileError(PageViewError, FileNotFoundError):
    """A source's PDF is not in the folders pages are shown from, or its name is not a plain PDF file name."""


class PageRangeError(PageViewError, IndexError):
    """The page number is not a page of the PDF."""


class UnreadablePdfError(PageViewError):
    """pdfium can't open or render the file (not a PDF, damaged, or password-protected)."""


# Finding the file -----------------------------------------------------------------------------------------


def _check_name(file: str) -> str:
    if (
        not file
        or file in (".", "..")
        or any(c in file for c in "/\\\x00")
        or not file.lower().endswith(".pdf")
        or file != file.strip()
    ):
        raise SourceFileError(
            f"The source's file name {file!r} is not a plain PDF file name (folders, '..' and backslashes are "
            "refused), so its page can't be shown. Fix: re-ingest the PDF under a plain name such as 'guide.pdf'."
        )
    return file


def source_folders(file: str, settings: Settings, specialty: str | None = None) -> list[Path]:
    """The folders :func:`find_pdf` looks in for ``file``, in order (see the module docstring).

    Args:
        file: the file name recorded in the store (a plain name).
        settings: ``data_dir`` and ``specialty``.
        specialty: the source's specialty when known; looked in first.
    """
    from corpora import list_corpora, load_corpus

    names = [s for s in (specialty,) if s]
    names += [n for n in list_corpora() if any(f.file == file for f in load_corpus(n).files)]
    names += [s for s in (settings.specialty,) if s]
    if settings.data_dir is None:
        return []
    return [Path(settings.data_dir) / "corpora" / name for name in dict.fromkeys(names)]


def find_pdf(file: str, settings: Settings, specialty: str | None = None) -> Path:
    """The path of a curated source's PDF, looked up by name in the corpus folders only (never in any uploads
    folder: a user's own upload is opened with :func:`assistant.chat.uploads.upload_path`).

    Args:
        file: file name as stored with the source (``Source.file`` / ``Evidence.file``); untrusted.
        settings: where the corpus is (``data_dir``) and the chosen ``specialty``.
        specialty: the source's specialty, when known.

    Returns:
        The resolved path of an existing file inside one of :func:`source_folders`.

    Raises:
        SourceFileError: the name is not a plain PDF name, or no folder holds the file (the message lists them).
    """
    _check_name(file)
    folders = source_folders(file, settings, specialty)
    for folder in folders:
        root = folder.resolve()
        candidate = (folder / file).resolve()
        if candidate.is_relative_to(root) and candidate.parent == root and candidate.is_file():
            return candidate
    where = ", ".join(str(f) for f in folders) or "any corpus folder"
    hint = (
        ""
        if settings.data_dir is not None
        else " LLAMA_MD_DATA_DIR is not set, so no corpus folder is searched."
    )
    raise SourceFileError(
        f"The page of {file!r} can't be shown: the file is not in {where}.{hint} Fix: put the PDF in its "
        "specialty's corpus folder, or point LLAMA_MD_DATA_DIR at the folder holding corpora/<specialty>/ "
        "(a document of your own: upload it again in the sidebar)."
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of ``path``, remembered per (path, size, mtime) so a cached page costs no re-hash."""
    from corpora import sha256_of

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_of(path)
    return _SHA_MEMO[key]


# Finding the sentence -------------------------------------------------------------------------------------


def _find(textpage, text: str, index: int = 0) -> tuple[int, int] | None:
    """First case-blind occurrence of ``text`` at or after char ``index``: ``(char index, char count)``."""
    searcher = textpage.search(text, index=index)
    try:
        return searcher.get_next()
    finally:
        searcher.close()


def _grow(textpage, words: list[str], i: int, start: int, k: int) -> tuple[int, int, int]:
    """Extend the run ``words[i:k]`` found at ``start`` word by word while it still matches there.

    Returns:
        ``(start, char count, end word index)``.
    """
    count = _find(textpage, " ".join(words[i:k]), start)[1]
    while k < len(words):
        hit = _find(textpage, " ".join(words[i : k + 1]), start)
        if hit is None or hit[0] != start:
            break
        count, k = hit[1], k + 1
    return start, count, k


def _chain(textpage, words: list[str], i: int, start: int, k: int) -> tuple[list[tuple[int, int]], int]:
    """Word runs from an anchor ``words[i:k]`` at char ``start``; returns (char spans, words covered)."""
    start, count, k = _grow(textpage, words, i, start, k)
    spans, covered = [(start, count)], k - i
    pos, skipped_chars, i = start + count, 0, k
    while i < len(words):
        hit = _find(textpage, words[i], pos)
        if hit is None or hit[0] - pos > MAX_GAP_CHARS + skipped_chars:
            skipped_chars += len(words[i]) + 1
            i += 1
            continue
        start, count, k = _grow(textpage, words, i, hit[0], i + 1)
        spans.append((start, count))
        covered += k - i
        pos, skipped_chars, i = start + count, 0, k
    return spans, covered


def find_sentence(textpage, sentence: str) -> list[tuple[int, int]]:
    """Where ``sentence`` is on a page, as pdfium char spans; the method is in the module docstring.

    Args:
        textpage: a ``pypdfium2.PdfTextPage``.
        sentence: the quoted sentence (as ingest extracted it: whitespace collapsed, hyphenated words joined).

    Returns:
        ``[(char index, char count), ...]`` in page order; empty when the sentence is not found well enough.
    """
    words = sentence.split()
    if not words:
        return []
    whole = _find(textpage, " ".join(words))
    if whole is not None:
        return [whole]
    best: tuple[list[tuple[int, int]], int] = ([], 0)
    for i in range(len(words)):  # anchor on the first run of MIN_ANCHOR_WORDS words found on the page
        k = min(len(words), i + MIN_ANCHOR_WORDS)
        anchor = " ".join(words[i:k])
        searcher = textpage.search(anchor)
        try:
            for _ in range(MAX_ANCHORS):
                hit = searcher.get_next()
                if hit is None:
                    break
                found = _chain(textpage, words, i, hit[0], k)
                if found[1] > best[1]:
                    best = found
        finally:
            searcher.close()
        if best[1] or len(words) - i <= MIN_ANCHOR_WORDS:
            break
    if best[1] < MIN_COVERED_SHARE * len(words):
        # counts only: the sentence is a passage's text, and logs hold no question or passage text (issue #25)
        logger.debug("Sentence not found on the page (%d of %d words matched)", best[1], len(words))
        return []
    return best[0]


def sentence_boxes(textpage, sentence: str) -> list[Box]:
    """pdfium's text rectangles of ``sentence`` on the page, one per line segment, in PDF points."""
    boxes = []
    for start, count in find_sentence(textpage, sentence):
        n = textpage.count_rects(start, count)
        boxes.extend(tuple(textpage.get_rect(i)) for i in range(n))
    return boxes


def _to_pixels(page, box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """A box in PDF points -> ``(x0, y0, x1, y1)`` pixels of a ``width`` x ``height`` render of ``page``."""
    import pypdfium2.raw as pdfium_c

    corners = []
    for x, y in ((box[0], box[1]), (box[2], box[3])):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, width, height, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
        corners.append((dx.value, dy.value))
    (ax, ay), (bx, by) = corners
    pad = HIGHLIGHT_PAD_PX
    return min(ax, bx) - pad, min(ay, by) - pad, max(ax, bx) + pad, max(ay, by) + pad


# Rendering ------------------------------------------------------------------------------------------------


def page_cache_path(sha256: str, page: int, highlight: str | None, cache_dir: Path, scale: float) -> Path:
    """Where the PNG of (file sha256, page, highlight, scale) is cached; the highlight is hashed after collapsing
    whitespace, so the same sentence gives the same file."""
    tag = "plain"
    if highlight and highlight.split():
        tag = hashlib.sha256(" ".join(highlight.split()).encode()).hexdigest()[:16]
    return Path(cache_dir) / sha256 / f"p{page}-{tag}-x{scale:g}.png"


def render_page(
    pdf_path: Path,
    page: int,
    *,
    highlight: str | None,
    cache_dir: Path,
    scale: float = DEFAULT_SCALE,
) -> Path:
    """Render one page of a PDF to PNG, with ``highlight`` (a sentence on that page) marked in yellow.

    Args:
        pdf_path: the PDF (from :func:`find_pdf`).
        page: 1-based page number.
        highlight: the sentence to mark, or None for the plain page; a sentence not found is not marked.
        cache_dir: cache folder (``$LLAMA_MD_HOME/cache/pages``).
        scale: pixels per PDF point (1.5 = 108 dpi), in (0, 4].

    Returns:
        The cached PNG's path (RGB, ``page width x scale`` by ``page height x scale`` pixels).

    Raises:
        SourceFileError: ``pdf_path`` does not exist.
        PageRangeError: ``page`` is not in ``1..page count``.
        UnreadablePdfError: pdfium can't open or render the file.
        PageViewError: ``scale`` out of range.
    """
    pdf_path = Path(pdf_path)
    if not 0 < scale <= MAX_SCALE:
        raise PageViewError(f"scale must be in (0, {MAX_SCALE:g}] pixels per point, got {scale}.")
    try:
        sha = file_sha256(pdf_path)
    except FileNotFoundError as exc:
        raise SourceFileError(
            f"{pdf_path} does not exist, so its page can't be shown. Fix: put the PDF back, or re-ingest."
        ) from exc
    target = page_cache_path(sha, page, highlight, cache_dir, scale)
    if target.is_file():
        return target
    image = _render(pdf_path, page, highlight, scale)
    private_dir(target.parent, top=Path(cache_dir).parent)  # cache_dir and its <sha256> folder: 0700
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG", compress_level=3)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _render(pdf_path: Path, page: int, highlight: str | None, scale: float):
    """The page as a PIL RGB image with the highlight drawn (pdfium calls under the lock)."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(pdf_path)
        except pdfium.PdfiumError as exc:
            raise UnreadablePdfError(
                f"{pdf_path.name} can't be opened as a PDF ({exc}); it may be damaged or password-protected. "
                "Fix: replace it with an intact, unencrypted copy and ingest it again."
            ) from exc
        try:
            if not 1 <= page <= len(pdf):
                raise PageRangeError(
                    f"{pdf_path.name} has {len(pdf)} page(s); page {page} does not exist. The store may come "
                    "from another version of the file: ingest it again."
                )
            pdf_page = pdf[page - 1]
            try:
                image = pdf_page.render(scale=scale).to_pil().convert("RGB")
                boxes = []
                if highlight:
                    textpage = pdf_page.get_textpage()
                    try:
                        boxes = [
                            _to_pixels(pdf_page, b, image.width, image.height)
                            for b in sentence_boxes(textpage, highlight)
                        ]
                    finally:
                        textpage.close()
            except pdfium.PdfiumError as exc:
                raise UnreadablePdfError(
                    f"Page {page} of {pdf_path.name} can't be rendered ({exc}). Fix: replace the file with an "
                    "intact copy and ingest it again."
                ) from exc
            finally:
                pdf_page.close()
        finally:
            pdf.close()
    if boxes:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for box in boxes:
            draw.rectangle(box, fill=HIGHLIGHT_RGBA)
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    return image
