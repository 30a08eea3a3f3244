"""``python -m ingest ...``: the same command as ``llama-md ingest ...`` (see ``llama-md ingest --help``)."""

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
