"""Caches of models built on this machine (the red-flag classifier, the specialty router): where, and how saved.

A model built from project data lives in ``<cache root>/<fingerprint>``, where the fingerprint covers everything
it was built from, so changed data or settings get a new folder and an old folder is never half-overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def cache_root(kind: str, env_var: str) -> Path:
    """``$<env_var>`` or ``$XDG_CACHE_HOME/llama-md/<kind>`` (default ``~/.cache/llama-md/<kind>``).

    Shared by every llama-md home on the machine: the models depend on nothing else.
    """
    explicit = os.environ.get(env_var)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-md" / kind


def save_atomically(model, folder: Path) -> None:
    """``model.save(tmp)`` into a temporary sibling folder, then rename it to ``folder``: a crash never leaves a
    half-written model, and when another process finished first its copy is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    model.save(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
