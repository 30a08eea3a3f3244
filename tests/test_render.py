"""The cited page, seen: real PDFs rendered by pypdfium2, the quoted sentence highlighted where it is and nowhere
else, the cache, and source file names that try to leave the corpus folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from assistant.rag import render
from assistant.rag.render import (
    PageRangeError,
    SourceFileError,
    UnreadablePdfError,
    find_pdf,
    find_sentence,
    render_page,
)
from tests.helpers import PREGNANCY_PAGES, make_settings, write_pdf

SCALE = 2.0
IRON = "Daily oral iron and folic acid supplements are recommended for pregnant women to prevent maternal anaemia."


@pytest.fixture
def home_settings(tmp_path):
    return make_settings(tmp_path / "home", specialty="pregnancy", data_dir=str(tmp_path / "data"))


def corpus_folder(settings):
    """The pregnancy corpus folder of ``settings.data_dir`` (where find_pdf looks)."""
    return settings.data_dir / "corpora" / "pregnancy"


@pytest.fixture
def guide(home_settings):
    """The chat tests' three-page guide in the corpus folder: page 1 holds IRON over three lines, between two
    sentences."""
    return write_pdf(corpus_folder(home_settings) / "nutrition_guide.pdf", PREGNANCY_PAGES)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of pixels that differ."""
    return np.abs(a - b).sum(axis=2) > 0


def char_px(pdf, page: int, text: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) pixels of the first char of ``text`` on a page, from pdfium's char box."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    textpage = doc[page - 1].get_textpage()
    i = textpage.get_text_range().index(text)
    left, bottom, right, top = textpage.get_charbox(i)
    height = doc[page - 1].get_height()
    doc.close()
    return left * SCALE, (height - top) * SCALE, right * SCALE, (height - bottom) * SCALE


def test_the_highlight_marks_the_sentence_and_nothing_else(guide, tmp_path):
    plain = render_page(guide, 1, highlight=None, cache_dir=tmp_path / "cache", scale=SCALE)
    marked = render_page(guide, 1, highlight=IRON, cache_dir=tmp_path / "cache", scale=SCALE)
    assert plain != marked
    a, b = pixels(plain), pixels(marked)
    assert a.shape == b.shape == (round(792 * SCALE), round(612 * SCALE), 3)
    mask = changed(a, b)
    rows, cols = np.nonzero(mask)
    _, daily_top, _, _ = char_px(guide, 1, "Daily")
    _, _, _, maternal_bottom = char_px(guide, 1, "maternal")
    limit_left, limit_top, _, limit_bottom = char_px(guide, 1, "Limit")
    # every changed pixel lies on the sentence's three lines ...
    assert rows.min() >= daily_top - 6 and rows.max() <= maternal_bottom + 6
    # ... the sentence before it (line 1, left of "Daily") and the one after it ("Limit caffeine") are untouched
    line3 = (rows >= limit_top) & (rows <= limit_bottom)
    assert line3.any() and cols[line3].max() < limit_left
    daily_left = char_px(guide, 1, "Daily")[0]
    assert cols[rows <= daily_top + 4].min() >= daily_left - 6
    # the mark is yellow over white paper, the text beneath stays dark
    assert (b[mask][:, 2] < b[mask][:, 0] - 40).mean() > 0.9
    assert mask.sum() > 10_000


def test_a_sentence_not_on_the_page_changes_nothing(guide, tmp_path):
    plain = render_page(guide, 2, highlight=None, cache_dir=tmp_path, scale=SCALE)
    other = render_page(guide, 2, highlight=IRON, cache_dir=tmp_path, scale=SCALE)
    assert not changed(pixels(plain), pixels(other)).any()


def test_words_hyphenated_across_lines_are_matched_as_word_runs(home_settings):
    """Ingest joins ``supple-`` + ``ments``; the page still has the hyphen, so the whole-sentence search fails and
    the word runs carry the highlight over both lines."""
    import pypdfium2 as pdfium

    lines = [
        "Warning. Daily oral iron and folic acid supple-",
        "ments are recommended for pregnant women. Rest.",
    ]
    pdf = write_pdf(corpus_folder(home_settings) / "hyphen.pdf", [lines])
    doc = pdfium.PdfDocument(pdf)
    textpage = doc[0].get_textpage()
    spans = find_sentence(
        textpage, "Daily oral iron and folic acid supplements are recommended for pregnant women."
    )
    text = textpage.get_text_range()
    covered = "".join(text[start : start + count] for start, count in spans)
    assert "Daily oral iron and folic acid" in covered and "recommended for pregnant women." in covered
    assert "Warning" not in covered and "Rest" not in covered
    assert find_sentence(textpage, "Nothing like this is written on the page at all.") == []
    doc.close()


def test_a_cached_page_is_returned_without_rendering_again(guide, tmp_path, monkeypatch):
    first = render_page(guide, 1, highlight=IRON, cache_dir=tmp_path, scale=SCALE)
    stamp = first.stat().st_mtime_ns

    def must_not_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(render, "_render", must_not_render)
    again = render_page(
        guide, 1, highlight="  " + IRON.replace(" ", "\n", 1), cache_dir=tmp_path, scale=SCALE
    )
    assert again == first and again.stat().st_mtime_ns == stamp
    assert first.parent.name == render.file_sha256(guide)
    assert [p.suffix for p in first.parent.iterdir()] == [".png"]  # no temporary file left behind


def test_a_page_outside_the_pdf_is_refused_with_the_page_count(guide, tmp_path):
    for page in (0, 4):
        with pytest.raises(PageRangeError, match=rf"has 3 page\(s\); page {page} does not exist"):
            render_page(guide, page, highlight=None, cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.png"))


def test_a_file_that_is_not_a_pdf_is_refused(home_settings, tmp_path):
    fake = corpus_folder(home_settings) / "fake.pdf"
    fake.parent.mkdir(parents=True)
    fake.write_text("just text")
    with pytest.raises(UnreadablePdfError, match="can't be opened as a PDF"):
        render_page(find_pdf("fake.pdf", home_settings), 1, highlight=None, cache_dir=tmp_path)
    with pytest.raises(SourceFileError, match="does not exist"):
        render_page(tmp_path / "gone.pdf", 1, highlight=None, cache_dir=tmp_path)


def test_source_names_never_leave_the_corpus_folders(guide, home_settings, tmp_path):
    assert find_pdf("nutrition_guide.pdf", home_settings) == guide.resolve()
    outside = write_pdf(tmp_path / "secret.pdf", ["not for the page view"])
    (corpus_folder(home_settings) / "link.pdf").symlink_to(outside)
    for name in (
        "../secret.pdf",
        "../../secret.pdf",
        str(outside),
        "..\\secret.pdf",
        "uploads/nutrition_guide.pdf",
        "..",
        "nutrition_guide.pdf\x00.png",
        "notes.txt",
        "",
    ):
        with pytest.raises(SourceFileError, match="not a plain PDF file name"):
            find_pdf(name, home_settings)
    with pytest.raises(SourceFileError, match="the file is not in") as missing:
        find_pdf("link.pdf", home_settings)  # a symlink out of the corpus folder
    assert str(corpus_folder(home_settings)) in str(missing.value) and "LLAMA_MD_DATA_DIR" in str(
        missing.value
    )
    with pytest.raises(SourceFileError, match="the file is not in"):
        find_pdf("secret.pdf", home_settings)


def test_a_corpus_source_is_found_in_its_specialty_folder_and_highlighted(data_dir, tmp_path):
    settings = make_settings(tmp_path / "home", data_dir=str(data_dir))
    name = "WHO_recommendations_maternal_health_2nd_ed_2025.pdf"
    path = find_pdf(name, settings)  # no specialty chosen: the manifest says pregnancy
    assert path == (data_dir / "corpora" / "pregnancy" / name).resolve()
    sentence = (  # page 42, across three lines of an italic paragraph
        "A woman may feel the urge to bear down before complete dilatation or she may not yet feel this urge at "
        "the moment when complete dilatation is diagnosed."
    )
    plain = pixels(render_page(path, 42, highlight=None, cache_dir=tmp_path, scale=1.0))
    marked = pixels(render_page(path, 42, highlight=sentence, cache_dir=tmp_path, scale=1.0))
    rows = np.nonzero(changed(plain, marked))[0]
    assert rows.size > 3_000 and rows.max() - rows.min() < 4 * 16  # three or four lines of ~12 pt text
