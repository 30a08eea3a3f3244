"""Corpus manifests: one TOML file per specialty (``corpora/<name>.toml``) and their loader.

Each manifest names the specialty, a description, its class in the specialty taxonomy (``specialty_class``, a slug
of ``assistant/specialties/taxonomy.toml``: what routing and the coverage map use) and its PDFs with title,
publisher, license, sha256, page count and, where known, the publisher's direct URL. The files themselves are
never committed: they are found under ``$LLAMA_MD_DATA_DIR/corpora/<name>/`` and verified by sha256.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import LlamaMdError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

logger = logging.getLogger(__name__)

MANIFEST_DIR = Path(__file__).resolve().parent


class CorpusError(LlamaMdError, RuntimeError):
    """A corpus is unknown, incomplete or altered; the message lists the files and the setting to fix."""


@dataclass(frozen=True)
class CorpusFile:
    """One PDF of a corpus, as pinned by its manifest."""

    file: str
    title: str
    publisher: str
    license: str
    sha256: str
    pages: int
    bytes: int = 0
    url: str = ""


@dataclass(frozen=True)
class Corpus:
    """A specialty's manifest: ``name`` is the folder name under ``<data_dir>/corpora``."""

    name: str
    display_name: str
    description: str
    specialty_class: str
    """Its class in the specialty taxonomy (e.g. pregnancy -> ``pregnancy_fertility``)."""
    files: tuple[CorpusFile, ...] = field(default_factory=tuple)

    @property
    def pages(self) -> int:
        return sum(f.pages for f in self.files)


def list_corpora() -> list[str]:
    """Names of all specialties that have a manifest, sorted."""
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.toml"))


def load_corpus(name: str) -> Corpus:
    """Read ``corpora/<name>.toml``.

    Raises:
        CorpusError: no manifest has that name (the message lists the valid ones), or its ``specialty_class`` is
            missing or not a slug of the taxonomy.
    """
    from assistant.specialties import load_taxonomy

    path = MANIFEST_DIR / f"{name}.toml"
    if not path.is_file():
        raise CorpusError(f"Unknown specialty {name!r}; manifests exist for: {', '.join(list_corpora())}.")
    data = tomllib.loads(path.read_text())
    files = tuple(CorpusFile(**entry) for entry in data.get("files", []))
    slug = data.get("specialty_class", "")
    if slug not in load_taxonomy():
        raise CorpusError(
            f"{path} has specialty_class = {slug!r}, which is not a class of the taxonomy. Fix: set it to one of "
            f"{', '.join(load_taxonomy())} (assistant/specialties/taxonomy.toml)."
        )
    return Corpus(data["name"], data["display_name"], data["description"], slug, files)


def corpora_by_class() -> dict[str, list[str]]:
    """Taxonomy slug -> names of the corpora of that class (only classes that have one)."""
    found: dict[str, list[str]] = {}
    for name in list_corpora():
        found.setdefault(load_corpus(name).specialty_class, []).append(name)
    return found


def specialty_descriptions() -> dict[str, str]:
    """Specialty name -> description, from every manifest (what topics and ``--specialty`` filters compare with)."""
    return {name: load_corpus(name).description for name in list_corpora()}


def check_specialty(name: str) -> str:
    """``name`` if a corpus manifest has it.

    Raises:
        CorpusError: unknown name; the message lists the valid ones.
    """
    valid = list_corpora()
    if name not in valid:
        raise CorpusError(f"Unknown specialty {name!r}; corpora exist for: {', '.join(valid)}.")
    return name


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, dest: Path, sha256: str, timeout_s: float = 30.0) -> bool:
    """Fetch ``url`` to ``dest`` atomically if its sha256 matches; False when offline or different."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        tmp_path = Path(tmp.name)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, tmp_path.open("wb") as out:
            shutil.copyfileobj(resp, out)
        if sha256_of(tmp_path) != sha256:
            logger.warning("Downloaded %s but its sha256 differs from the manifest; not used", url)
            return False
        tmp_path.replace(dest)
        return True
    except OSError as exc:
        logger.info("Could not download %s: %s", url, exc)
        return False
    finally:
        tmp_path.unlink(missing_ok=True)


def resolve_corpus(name: str, data_dir: Path | None, *, download: bool = True) -> list[Path]:
    """Paths of every file of a corpus under ``<data_dir>/corpora/<name>/``, sha256-verified.

    A missing file with a known URL is downloaded when ``download`` is true and the network allows it.

    Returns:
        One path per manifest entry, in manifest order.

    Raises:
        CorpusError: ``data_dir`` unset, files missing (each named, with where to put them) or whose sha256
            differs from the manifest (each named with both digests).
    """
    corpus = load_corpus(name)
    if data_dir is None:
        raise CorpusError(
            f"No data folder set, so the {name!r} corpus can't be found. "
            "Fix: set LLAMA_MD_DATA_DIR (or data_dir in llama-md.toml) to the folder holding corpora/<specialty>/."
        )
    folder = Path(data_dir) / "corpora" / name
    paths, missing, altered = [], [], []
    for entry in corpus.files:
        path = folder / entry.file
        if not path.is_file() and download and entry.url:
            _download(entry.url, path, entry.sha256)
        if not path.is_file():
            missing.append(entry.file + (f" (source: {entry.url})" if entry.url else ""))
            continue
        digest = sha256_of(path)
        if digest != entry.sha256:
            altered.append(f"{entry.file}: found sha256 {digest}, manifest expects {entry.sha256}")
            continue
        paths.append(path)
    problems = []
    if missing:
        problems.append(f"missing from {folder}: " + "; ".join(missing))
    if altered:
        problems.append("altered (sha256 mismatch): " + "; ".join(altered))
    if problems:
        raise CorpusError(
            f"Corpus {name!r} is incomplete — "
            + " | ".join(problems)
            + ". Fix: put the exact files listed in "
            f"corpora/{name}.toml into {folder} (or point LLAMA_MD_DATA_DIR at a folder that has them)."
        )
    return paths
