"""Small PDFs written by the tests themselves: a hand-written PDF with Helvetica text, then pypdf for labels,
encryption and empty documents."""

from __future__ import annotations

from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A valid PDF: one page per list of lines (Helvetica 11 pt, top to bottom); an empty list draws a box only."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        if lines:
            ops = ["BT /F1 11 Tf 13 TL 72 760 Td"] + [f"({_escape(line)}) Tj T*" for line in lines] + ["ET"]
        else:
            ops = ["0 0 1 RG 100 100 300 300 re S"]  # a drawing, no text layer
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_pdf(
    path: Path,
    pages: list[list[str]],
    *,
    password: str | None = None,
    roman_pages: int = 0,
) -> Path:
    """Write ``pages`` to ``path``; ``password`` encrypts it (``""`` = empty user password); the first
    ``roman_pages`` pages get the labels i, ii, ... and the rest 1, 2, ..."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(pages))
    if password is None and not roman_pages:
        return path
    from pypdf import PdfReader, PdfWriter
    from pypdf.constants import PageLabelStyle

    writer = PdfWriter(clone_from=PdfReader(path))
    if roman_pages:
        writer.set_page_label(0, roman_pages - 1, style=PageLabelStyle.LOWERCASE_ROMAN)
        writer.set_page_label(roman_pages, len(pages) - 1, style=PageLabelStyle.DECIMAL)
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner-secret", algorithm="RC4-128")
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def empty_pdf(path: Path) -> Path:
    """A well-formed PDF with 0 pages."""
    from pypdf import PdfWriter

    with path.open("wb") as fh:
        PdfWriter().write(fh)
    return path


TOPICS = [
    "iron and folic acid supplements reduce anaemia in pregnant women",
    "exclusive breastfeeding for the first six months protects the newborn",
    "postpartum depression screening at the six week visit",
    "kangaroo mother care for preterm babies keeps them warm",
    "tetanus toxoid vaccination during pregnancy prevents neonatal tetanus",
    "delayed umbilical cord clamping improves iron stores in infants",
    "calcium supplementation lowers the risk of pre-eclampsia",
    "skin to skin contact right after birth helps the first breastfeed",
]


def topic_pages(doc: int, n_pages: int, lines_per_page: int = 24) -> list[list[str]]:
    """Deterministic English-like pages: page p of document d is about TOPICS[(d + p) % len(TOPICS)]."""
    pages = []
    for p in range(n_pages):
        topic = TOPICS[(doc + p) % len(TOPICS)]
        pages.append(
            [f"Document {doc} page {p + 1}: {topic}."]
            + [
                f"Point {k} on this page: health workers explain that {topic}, as trial {doc}-{p}-{k} showed."
                for k in range(lines_per_page)
            ]
        )
    return pages
