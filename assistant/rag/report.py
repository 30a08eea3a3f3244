"""What one ingest run did, file by file: the ``--report`` JSON and the printed summary table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class FileResult:
    """What happened to one input. ``status``: ingested, unchanged, skipped, failed or pruned; in a dry run
    also ``to add``, ``to replace`` and ``to remove``."""

    file: str
    status: str
    reason: str = ""
    path: str = ""
    pages: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_unchanged: int = 0
    seconds: float = 0.0


@dataclass
class IngestReport:
    """Summary of one ingest run; ``to_dict()`` is the ``--report`` JSON, ``table()`` the printed summary."""

    collection: str
    store: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    total_chunks: int = 0  # chunks in the collection after the run
    dry_run: bool = False  # nothing was written; statuses say what would happen
    notes: list[str] = field(default_factory=list)  # run-level warnings (a refused --prune or --rebuild)

    def _with(self, status: str) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    @property
    def ingested(self) -> list[FileResult]:
        return self._with("ingested")

    @property
    def unchanged(self) -> list[FileResult]:
        return self._with("unchanged")

    @property
    def skipped(self) -> list[FileResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[FileResult]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        """True when at least one input is now in the store (ingested in this run or unchanged); in a dry run,
        when at least one would be."""
        return bool(self.ingested or self.unchanged or self._with("to add") or self._with("to replace"))

    def totals(self) -> dict:
        pages = sum(f.pages for f in self.ingested)
        return {
            "ingested": len(self.ingested),
            "unchanged": len(self.unchanged),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "pruned": len(self._with("pruned")),
            "to_add": len(self._with("to add")),
            "to_replace": len(self._with("to replace")),
            "to_remove": len(self._with("to remove")),
            "pages": pages,
            "chunks_added": sum(f.chunks_added for f in self.files),
            "chunks_removed": sum(f.chunks_removed for f in self.files),
            "chunks_unchanged": sum(f.chunks_unchanged for f in self.files),
            "total_chunks": self.total_chunks,
            "seconds": round(self.seconds, 2),
            "pages_per_s": round(pages / self.seconds, 2) if self.seconds else 0.0,
        }

    def to_dict(self) -> dict:
        return {
            "collection": self.collection,
            "store": self.store,
            "dry_run": self.dry_run,
            "notes": list(self.notes),
            "files": [asdict(f) for f in self.files],
            "totals": self.totals(),
        }

    def table(self) -> str:
        """Plain-text table: one row per file, then the totals."""
        rows = [("file", "status", "pages", "+chunks", "-chunks", "=chunks", "s", "reason")]
        for f in self.files:
            rows.append(
                (
                    f.file,
                    f.status,
                    str(f.pages),
                    str(f.chunks_added),
                    str(f.chunks_removed),
                    str(f.chunks_unchanged),
                    f"{f.seconds:.1f}",
                    f.reason,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows
        ]
        t = self.totals()
        if self.dry_run:
            lines.append(
                f"dry run, nothing written: would add {t['to_add']}, replace {t['to_replace']}, "
                f"remove {t['to_remove']}; unchanged {t['unchanged']}, skipped {t['skipped']}, failed {t['failed']}"
            )
            return "\n".join(lines + [f"note: {n}" for n in self.notes])
        lines.append(
            f"ingested {t['ingested']}, unchanged {t['unchanged']}, skipped {t['skipped']}, failed {t['failed']}"
            f"{', pruned ' + str(t['pruned']) if t['pruned'] else ''} | pages {t['pages']}, chunks "
            f"+{t['chunks_added']} -{t['chunks_removed']} ={t['chunks_unchanged']} (collection: {t['total_chunks']})"
            f" | {t['seconds']:.1f} s, {t['pages_per_s']:.1f} pages/s"
        )
        return "\n".join(lines + [f"note: {n}" for n in self.notes])
