"""The one exception type for bad user input, and how entry points report it.

Validation raises `InputError` naming the file, row (line in the file, header = line 1) and column;
command-line entry points catch it and print a single line without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps


class InputError(ValueError):
    """Bad input from the user: a file, a field, a parameter."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


def exit_on_input_error(main: Callable) -> Callable:
    """Decorate a CLI main: an InputError becomes one line on stderr and exit status 2."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as err:
            print(f"error: {err.describe()}", file=sys.stderr)
            sys.exit(2)

    return wrapper
