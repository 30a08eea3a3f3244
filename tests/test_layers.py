"""Imports go one way: front-ends -> assistant; inside it cli -> chat/evaluation -> rag/finetuning -> the base.

Every module's imports (module level and inside functions) are read with ``ast`` and checked against ``LAYERS``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

FRONT_ENDS = ("ingest", "finetune", "ui", "benchmarks", "tests")
LIBRARY = ("assistant", "corpora")

#: The library's layers, top first. A module may import its own group and any group of a lower layer; inside a
#: layer only the pairs in SIBLINGS (importer, imported) are allowed, except in the base layer, whose modules are
#: building blocks that may use each other.
LAYERS: list[tuple[str, ...]] = [
    ("assistant.cli", "assistant.__main__"),
    ("assistant.chat", "assistant.evaluation", "assistant.doctor"),
    ("assistant.rag", "assistant.finetuning", "assistant.topics"),
    (
        "assistant.config",
        "assistant.models",
        "assistant.adapters",
        "assistant.data",
        "assistant.errors",
        "assistant.torch_thread",
        "assistant.cache",
        "assistant.specialties",
        "assistant",
        "corpora",
    ),
]
SIBLINGS = {
    ("assistant.evaluation", "assistant.chat"),  # the evaluation runs the chat's answer path
    ("assistant.__main__", "assistant.cli"),  # python -m assistant is the llama-md command line
}


def group_of(module: str) -> tuple[str, int]:
    """``(group, layer index)`` of a first-party module: the longest group name that is the module or its parent."""
    matches = [
        (name, i)
        for i, layer in enumerate(LAYERS)
        for name in layer
        if module == name or module.startswith(name + ".")
    ]
    return max(matches, key=lambda m: len(m[0]))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(module: str) -> bool:
    path = REPO.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(module: str, source: str) -> list[str]:
    """First-party modules imported by ``source`` (``from a.b import c`` -> ``a.b.c`` when that is a module)."""
    package = module if (REPO / Path(*module.split("."))).is_dir() else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append(full if _exists(full) else base)
    return [m for m in found if m.split(".")[0] in LIBRARY + FRONT_ENDS]


def violations(module: str, source: str) -> list[str]:
    """Why ``module``'s imports break the layering (empty when they don't)."""
    top = module.split(".")[0]
    problems = []
    for target in imports_of(module, source):
        target_top = target.split(".")[0]
        if top in LIBRARY:
            if target_top in FRONT_ENDS:
                problems.append(f"{module} imports the front-end {target}: the library imports no front-end")
                continue
            (src_group, src_layer), (dst_group, dst_layer) = group_of(module), group_of(target)
            base = dst_layer == len(LAYERS) - 1
            if dst_layer < src_layer or (
                dst_layer == src_layer
                and src_group != dst_group
                and not base
                and (src_group, dst_group) not in SIBLINGS
            ):
                problems.append(
                    f"{module} ({src_group}) imports {target} ({dst_group}): imports go from "
                    + " -> ".join("/".join(g.split(".")[-1] for g in layer) for layer in LAYERS)
                )
        elif top != "tests" and target_top in FRONT_ENDS and target_top != top:
            problems.append(f"front-end {module} imports the front-end {target}; import assistant instead")
    return problems


def python_files() -> list[Path]:
    roots = [REPO / name for name in LIBRARY + FRONT_ENDS if name != "tests"]
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_imports_go_one_way():
    problems = [v for path in python_files() for v in violations(module_name(path), path.read_text())]
    assert not problems, "\n".join(problems)


def test_no_module_edits_sys_path():
    """The library and its front-ends import through the installed package, never by editing sys.path."""
    offenders = [
        str(path.relative_to(REPO))
        for path in python_files()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ]
    assert not offenders, offenders


def test_a_wrong_way_import_is_caught():
    assert violations("assistant.rag.retrieve", "from assistant.chat.answer import Assistant")
    assert violations("assistant.finetuning.dataprep", "from assistant.topics import model_topics")
    assert violations("assistant.chat.answer", "from assistant.evaluation import runner")
    assert violations("assistant.models", "def f():\n    from assistant.rag import store")
    assert violations("assistant.evaluation.runner", "import benchmarks.safety_bench")
    assert violations("corpora", "from ingest.__main__ import main")
    assert violations("ui.app", "from finetune.__main__ import main")
    assert not violations("assistant.evaluation.runner", "from assistant.chat.answer import Assistant")
    assert not violations("assistant.chat.answer", "from assistant.rag.retrieve import Retriever")
    assert not violations("assistant.models", "from assistant.config import Settings")
    assert not violations("ui.app", "from assistant.chat.answer import Assistant")
