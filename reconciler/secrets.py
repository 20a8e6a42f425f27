"""Secret values as a type, and the redaction filter that is the last line of defence.

Every value read from a Vault secret's data, the Nylas API key and the Vault token is wrapped
in `Secret` as soon as it is read. `Secret` hides its value from `repr`, `str` and formatting;
`reveal()` is called only where a request body or header is built. Each `Secret` also
registers its value with the process-wide `REDACTOR`, which the logging filter and the CLI's
output paths use to mask any value that leaked into a string anyway. Values that travel with
credentials but are not secret (a host, a port, a username) are wrapped with `redact=False`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

MASK = "[REDACTED]"
# Values shorter than this are not registered: masking "1" or "993" (a port) everywhere would
# garble output without protecting anything secret.
MIN_REDACTED_LENGTH = 6


class Redactor:
    """A thread-safe set of secret values to mask in any text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: tuple[str, ...] = ()

    def register(self, value: str) -> None:
        """Add `value` to the set masked by `redact`."""
        if len(value) < MIN_REDACTED_LENGTH or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            # Longest first, so a value containing another is masked whole.
            self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """Return `text` with every registered value replaced by the mask."""
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def clear(self) -> None:
        """Forget every value (tests only)."""
        with self._lock:
            self._values.clear()
            self._ordered = ()


REDACTOR = Redactor()


class Secret:
    """A secret string whose value never appears in `repr`, `str` or format output."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, redact: bool = True) -> None:
        """Wrap `value`; with `redact=False` the redaction filter does not mask it.

        Pass `redact=False` only for values carried beside credentials that are not secret
        themselves (a host, a port, a username that is the mailbox's email), so that output
        naming them stays readable.
        """
        self._value = value
        if redact:
            REDACTOR.register(value)

    def reveal(self) -> str:
        """Return the value; call only while building a request."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secret values in every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = REDACTOR.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_text:
            record.exc_text = REDACTOR.redact(record.exc_text)
        return True


def register_all(values: Iterable[str]) -> None:
    """Register several values with the redactor."""
    for value in values:
        REDACTOR.register(value)
