"""The specialty taxonomy (``taxonomy.toml`` beside this file): 30 patient-facing classes plus ``other``.

Each class has a slug, a patient-facing name, a one-line scope, its US board, NUCC provider-taxonomy codes and a
MeSH anchor (source: ``../shared/specialties/taxonomy.md``), plus two phrases the chat uses when a question is
outside the library: ``topic`` ("This looks like a skin question") and ``clinician`` ("usually seen by a family
doctor first, then a dermatologist").

Labelling is population-first: the class is chosen for the question, and a question that names a population (a
child, a pregnant woman) goes to that population's class ("is ibuprofen safe in pregnancy" is
``pregnancy_fertility``, not ``medications``).

    from assistant.specialties import load_taxonomy, get_specialty
    get_specialty("dermatology").name        # 'Skin, hair & nails'
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assistant.errors import LlamaMdError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TAXONOMY_FILE = Path(__file__).resolve().parent / "taxonomy.toml"
OTHER = "other"


class UnknownSpecialtyError(LlamaMdError, ValueError):
    """A slug that is not in the taxonomy; the message lists the valid ones."""


@dataclass(frozen=True)
class Specialty:
    """One class of the taxonomy (fields as in ``taxonomy.toml``)."""

    slug: str
    name: str
    scope: str
    board: str
    nucc: tuple[str, ...]
    mesh: str
    topic: str
    clinician: str


@lru_cache(maxsize=1)
def load_taxonomy() -> dict[str, Specialty]:
    """slug -> :class:`Specialty`, in the file's order (``other`` last)."""
    data = tomllib.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
    return {c["slug"]: Specialty(**{**c, "nucc": tuple(c["nucc"])}) for c in data["class"]}


def slugs() -> list[str]:
    """Every slug, in the taxonomy's order (31: 30 classes and ``other``)."""
    return list(load_taxonomy())


def get_specialty(slug: str) -> Specialty:
    """The class named ``slug``.

    Raises:
        UnknownSpecialtyError: no such slug (the valid ones are listed).
    """
    check_slug(slug)
    return load_taxonomy()[slug]


def check_slug(slug: str) -> str:
    """``slug`` if the taxonomy has it.

    Raises:
        UnknownSpecialtyError: no such slug; the message lists the valid ones and names the taxonomy file.
    """
    if slug not in load_taxonomy():
        raise UnknownSpecialtyError(
            f"Unknown specialty class {slug!r}; {TAXONOMY_FILE.name} has: {', '.join(load_taxonomy())}."
        )
    return slug
