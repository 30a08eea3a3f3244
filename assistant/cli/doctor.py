"""Check Python, torch, the device, bf16, the bundled models, the data folder and the store.

    llama-md doctor [--data-dir ../shared]

Exits non-zero, with a one-line fix per problem, when something the main job needs is missing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from assistant.config import Settings, load_settings


@dataclass
class DoctorConfig:
    settings: Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="folder with datasets/ and corpora/ (default: $LLAMA_MD_DATA_DIR)")
    parser.add_argument("--home", help="llama-md home folder (default: $LLAMA_MD_HOME or ./.llama-md)")


def config_from_args(args: argparse.Namespace) -> DoctorConfig:
    return DoctorConfig(load_settings({"data_dir": args.data_dir, "home": args.home}))


def main(cfg: DoctorConfig) -> int:
    """Print one line per check (and its fix); 1 when a required check failed."""
    from assistant.doctor import run_checks

    settings = cfg.settings
    started = time.perf_counter()
    checks = run_checks(settings)
    width = max(len(c.name) for c in checks)
    failed = [c for c in checks if not c.ok and c.required]
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(f"[{mark}] {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            print(f"       {'':<{width}}  fix: {c.fix}")
    print(
        f"home: {settings.home.resolve()}  specialty: {settings.specialty or '(not chosen)'}  "
        f"({time.perf_counter() - started:.1f} s)"
    )
    if failed:
        print(f"{len(failed)} required check(s) failed: " + ", ".join(c.name for c in failed))
        return 1
    return 0
