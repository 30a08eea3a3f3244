"""Quoted evidence: the sentences of the retrieved passages that answer the question, shown verbatim with file and
page under every answer.

(Selection itself is being built; this module holds the record the answer path, the CLI and the UI share.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Evidence:
    """One quoted sentence. ``number`` is its passage's [n] marker in the prompt; ``page`` is 1-based."""

    number: int
    file: str
    page: int
    page_label: str
    title: str
    sentence: str
    score: float

    def to_json(self) -> dict:
        """The CLI's ``--json`` form: ``{"file", "page", "page_label", "sentence", "score"}``."""
        data = asdict(self)
        data["score"] = round(self.score, 4)
        return {k: data[k] for k in ("file", "page", "page_label", "sentence", "score")}
