"""Diagnostics on stderr through `logging`, with every registered secret masked.

The CLI calls `configure_logging` once per invocation. Plans and results never go through
logging: they are written to stdout by the commands, so a pipe such as
`grantctl plan --format json | jq` receives only the document.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from reconciler.secrets import REDACTOR, RedactingFilter

LOGGER_NAME = "reconciler"
LEVELS = ("debug", "info", "warning", "error")
_FORMAT = "grantctl: %(levelname)s: %(message)s"
_DEBUG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """A formatter that masks registered secrets in the whole formatted record.

    `RedactingFilter` masks the message before formatting; this formatter also covers the
    traceback text, which `logging` renders only while formatting.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format `record` and mask every registered secret value in the result."""
        return REDACTOR.redact(super().format(record))


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:  # StreamHandler is subscriptable at run time only from Python 3.11
    _StreamHandler = logging.StreamHandler


class _GrantctlHandler(_StreamHandler):
    """The stderr handler installed by `configure_logging`, marked so it can be replaced."""


def configure_logging(level: str = "warning") -> logging.Logger:
    """Send the `reconciler` logger's records at `level` or above to the current stderr.

    The handler is created from `sys.stderr` at call time, so click's test runner, which
    swaps the stream, captures the output. A handler from an earlier call is replaced.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _GrantctlHandler):
            logger.removeHandler(handler)

    handler = _GrantctlHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    numeric = logging.getLevelName(level.upper())
    handler.setFormatter(RedactingFormatter(_DEBUG_FORMAT if level == "debug" else _FORMAT))
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    return logger
