"""Generator load time: the first load converts the bundled GGUF to safetensors, later loads read that cache.

    .venv/bin/python -m benchmarks.model_load_bench              # a fresh home in /tmp, removed afterwards
    .venv/bin/python -m benchmarks.model_load_bench --loads 3

Prints the seconds of each ``assistant.models.load_generator`` call in one process (CPU) and the ratio of the
first to the median later load. Figures in docs/results.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from assistant.config import load_settings
from assistant.models import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", type=int, default=2, help="loads in a row (default 2)")
    parser.add_argument("--home", type=Path, help="llama-md home (default: a fresh temporary folder)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="llama-md-load-bench-"))
    settings = load_settings({"home": str(home)}, environ={})
    seconds = []
    try:
        for _ in range(args.loads):
            started = time.perf_counter()
            load_generator(None, settings, device="cpu")
            seconds.append(time.perf_counter() - started)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print("| load | seconds |\n|---|---|")
    for i, s in enumerate(seconds, 1):
        print(f"| {i}{' (converts the GGUF)' if i == 1 else ' (cache)'} | {s:.2f} |")
    if len(seconds) > 1:
        later = statistics.median(seconds[1:])
        print(f"first / later: {seconds[0] / later:.1f}x")


if __name__ == "__main__":
    main()
