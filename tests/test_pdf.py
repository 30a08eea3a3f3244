"""PDF text extraction and cleaning on PDFs the tests write, and on the smallest real corpus files."""

from __future__ import annotations

import pytest

from assistant.rag.pdf import PdfError, clean_page, read_pdf, repeated_edge_lines
from tests.helpers import TOPICS, empty_pdf, pdf_bytes, topic_pages, write_pdf


def test_clean_page_joins_hyphenated_breaks_and_collapses_whitespace():
    text, removed = clean_page("Women with pre-\neclampsia   need\n\n  low-dose aspirin.\nanae-\n mia")
    assert text == "Women with preeclampsia need low-dose aspirin. anaemia"
    assert removed == 0


def test_running_headers_footers_and_page_numbers_are_dropped(tmp_path):
    pages = [
        ["Maternal Care Handbook", *body, f"Page {i + 1}"] for i, body in enumerate(topic_pages(0, 6, 3))
    ]
    pdf = read_pdf(write_pdf(tmp_path / "h.pdf", pages))
    assert [p.number for p in pdf.pages] == [1, 2, 3, 4, 5, 6]
    for page, topic in zip(pdf.pages, TOPICS, strict=False):
        assert "Maternal Care Handbook" not in page.text
        assert "Page" not in page.text
        assert page.text.startswith(f"Document 0 page {page.number}: {topic}.")
    assert pdf.removed_lines == 12


def test_short_documents_keep_their_first_lines():
    assert repeated_edge_lines(["Title\nbody", "Title\nother"]) == set()


def test_printed_page_labels_are_read(tmp_path):
    pages = [[topic] for topic in TOPICS[:5]]
    pdf = read_pdf(write_pdf(tmp_path / "labels.pdf", pages, roman_pages=2))
    assert [(p.number, p.label) for p in pdf.pages] == [(1, "i"), (2, "ii"), (3, "1"), (4, "2"), (5, "3")]


def test_encrypted_with_empty_password_is_opened(tmp_path):
    pdf = read_pdf(write_pdf(tmp_path / "e.pdf", [["open sesame text"]], password=""))
    assert pdf.pages[0].text == "open sesame text"


def test_encrypted_with_a_password_is_skipped(tmp_path):
    with pytest.raises(PdfError, match="password") as err:
        read_pdf(write_pdf(tmp_path / "p.pdf", [["secret"]], password="hunter2"))
    assert err.value.status == "skipped"


@pytest.mark.parametrize(
    ("make", "status", "match"),
    [
        (lambda p: write_pdf(p, [[], []]), "skipped", "no text layer"),
        (empty_pdf, "skipped", "0 pages"),
        (lambda p: p.write_bytes(pdf_bytes([["some text here"]] * 3)[:300]), "failed", "unreadable"),
        (lambda p: p.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8), "failed", "unreadable"),
        (lambda p: p.write_text("just a text file renamed to .pdf"), "skipped", "not a PDF"),
    ],
    ids=["no-text-layer", "zero-pages", "truncated", "corrupt", "not-a-pdf"],
)
def test_bad_pdfs_raise_with_status_and_reason(tmp_path, make, status, match):
    path = tmp_path / "bad.pdf"
    make(path)
    with pytest.raises(PdfError, match=match) as err:
        read_pdf(path)
    assert err.value.status == status


def test_real_who_guideline_has_roman_front_matter_and_no_running_header(data_dir):
    pdf = read_pdf(data_dir / "corpora" / "pregnancy" / "WHO_recommendations_newborn_health_2017.pdf")
    labels = [p.label for p in pdf.pages]
    assert "i" in labels and "1" in labels
    assert pdf.page_count == 26 and pdf.empty_pages == 3
    assert not any(p.text.startswith("WHO recommendations on newborn health") for p in pdf.pages[5:])
