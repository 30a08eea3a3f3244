"""``python -m assistant COMMAND``: the library's command line.

python -m assistant doctor                 # versions, device, models, data, store
python -m assistant search "iron in pregnancy" --top-k 5 --json
python -m assistant topics ../shared/datasets/chatdoctor5k.json
python -m assistant chat "What should I eat during the third trimester?"
"""

from __future__ import annotations

import argparse
import importlib
import sys

from assistant.cli import run_safely, setup_logging

#: command name -> module with add_arguments(parser) and run(args) -> int. Modules not yet written are skipped.
COMMANDS = {
    "doctor": "assistant.cli.doctor",
    "search": "assistant.cli.search",
    "topics": "assistant.cli.topics",
    "chat": "assistant.cli.chat",
    "evaluate": "assistant.cli.evaluate",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        doc = (module.__doc__ or "").strip().split("\n")[0]
        module.add_arguments(
            sub.add_parser(
                name,
                help=doc,
                description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return run_safely(modules[args.command].run, args)


if __name__ == "__main__":
    sys.exit(main())
