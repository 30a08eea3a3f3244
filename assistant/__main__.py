"""``python -m assistant COMMAND ...``: the same command line as ``llama-md`` (see :mod:`assistant.cli`)."""

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main())
