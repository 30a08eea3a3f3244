"""PDF uploads from the chat UI: sanitized names, a size limit, and a check that the bytes really are a PDF."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.errors import LlamaMdError

MAX_UPLOAD_BYTES = 50 * 2**20  # 50 MiB: the largest corpus PDF here is 3.4 MB
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(LlamaMdError, ValueError):
    """An uploaded file is refused; the message says why and what is accepted."""


def safe_name(name: str) -> str:
    """A file name without folders or unusual characters, ending in .pdf ("../../x y.PDF" -> "x_y.pdf")."""
    stem = re.sub(r"\.pdf$", "", Path(name.replace("\\", "/")).name, flags=re.IGNORECASE)
    stem = _UNSAFE.sub("_", stem).strip("._") or "upload"
    return f"{stem[:120]}.pdf"


def save_upload(name: str, data: bytes, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Validate an upload and write it atomically to ``folder``; returns the saved path.

    Raises:
        UploadError: not a ``.pdf`` name, not PDF bytes (no ``%PDF-`` header), empty, or over ``max_bytes``.
    """
    if not name.lower().endswith(".pdf"):
        raise UploadError(f"{name!r} is not a PDF: only .pdf files can be added to the library.")
    if not data:
        raise UploadError(f"{name!r} is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            f"{name!r} is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB."
        )
    if not data[:1024].lstrip().startswith(b"%PDF-"):
        raise UploadError(f"{name!r} is named .pdf but its content is not a PDF (no %PDF- header).")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_name(name)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
