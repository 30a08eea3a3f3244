"""``python -m finetune ...``: the same command as ``llama-md finetune ...`` (see ``llama-md finetune --help``).

Also the module ``accelerate launch -m finetune ...`` starts in every process.
"""

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
