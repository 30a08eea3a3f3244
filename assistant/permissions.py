"""Owner-only folders and files for what users leave on the server: their uploads, their stores, rendered pages.

The chat history sets its own modes (:mod:`assistant.chat.history`); everything else a user's data lands in goes
through here, so another account on the machine can't list or read it whatever the umask (issue #25)::

    private_dir(settings.home / "users" / key, top=settings.home)   # home/users and home/users/<key>: 0700
    restrict_tree(settings.home / "users" / key)                    # folders 0700, files 0600, all the way down
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, top: Path | None = None) -> Path:
    """Create ``path`` (and missing parents) and set it, and every folder between ``top`` and it, to ``0700``.

    Args:
        path: the folder.
        top: the first folder *not* changed (e.g. ``settings.home``); None: only ``path`` itself.

    Returns:
        ``path``.

    Raises:
        OSError: a folder can't be created or its mode set (e.g. owned by another account).
    """
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    folders = [path]
    if top is not None and path.is_relative_to(top):
        folders += [p for p in path.parents if p.is_relative_to(top) and p != Path(top)]
    for folder in folders:
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask, and an existing folder may be wider
    return path


def restrict_tree(root: Path) -> None:
    """Set ``root`` and every folder under it to ``0700`` and every file to ``0600`` (links are not followed).

    Raises:
        OSError: a mode can't be set. A file that vanishes meanwhile is skipped.
    """
    root = Path(root)
    if not root.is_dir():
        return
    os.chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name, mode in [(d, DIR_MODE) for d in dirs] + [(f, FILE_MODE) for f in files]:
            path = Path(folder) / name
            if not path.is_symlink():
                try:
                    os.chmod(path, mode)
                except FileNotFoundError:
                    continue
