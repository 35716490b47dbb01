"""The filter package's error: an InputError that also knows where in the expression it happened."""

from __future__ import annotations

from personalize_torch.errors import InputError


class FilterError(InputError):
    """A bad filter expression, filter value or reference to a dataset field.

    `position` is the 1-based character position in the expression (None when the error is not tied
    to one, e.g. a malformed `filterValues` entry); the message starts with ``at character N:``.
    """

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        super().__init__(f"at character {position}: {message}" if position is not None else message)


def quoted(text: str) -> str:
    """`text` in double quotes, for messages (`got "LIKE"`)."""
    return '"' + text.replace('"', '\\"') + '"'
