"""The project's errors: one base class whose messages can be shown to a user as they are.

Every error llama-md raises on purpose derives from :class:`LlamaMdError` (and keeps a built-in base such as
``ValueError`` where callers expect one). Its message says what was wrong, what was found and how to fix it, so the
front-ends catch ``LlamaMdError`` and show the message alone, never ``TypeName: message`` nor a traceback.
Anything else is a bug: :func:`report_unexpected` writes its traceback to a log file and gives the one sentence to
show instead.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

logger = logging.getLogger(__name__)

ERROR_LOG = "errors.log"


class LlamaMdError(Exception):
    """Base of every error llama-md raises on purpose; ``str(error)`` is the plain sentence(s) to show.

    ``exit_code`` is what the command line exits with (2: the input or setup needs fixing).
    """

    exit_code: int = 2


def report_unexpected(exc: BaseException, log_dir: Path | None) -> str:
    """Log an unexpected exception's traceback and return the sentence to show the user instead.

    Args:
        exc: the exception (not a :class:`LlamaMdError`).
        log_dir: folder for ``errors.log`` (``$LLAMA_MD_HOME/logs``); None = only the process's log.

    Returns:
        One sentence naming where the details are.
    """
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.debug("Unexpected error:\n%s", text)
    if log_dir is not None:
        try:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            path = Path(log_dir) / ERROR_LOG
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text}\n")
            return (
                f"Something unexpected went wrong; the details were written to {path}. "
                "Please include that file when you report the problem."
            )
        except OSError:
            pass
    logger.error("Unexpected error:\n%s", text)
    return "Something unexpected went wrong; the details are in the log above. Please report the problem."
