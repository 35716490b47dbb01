"""The one exception type for bad user input, and how entry points report it.

Validation raises `InputError` naming the file, row (line in the file, header = line 1) and column;
command-line entry points catch it and print a single line without a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path


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


def read_json_file(path: str | Path, what: str):
    """The JSON value in a user's file; a missing file or bad JSON is an InputError naming file and line."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())    # bytes: UTF-8 (with or without a BOM), UTF-16 or UTF-32
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory, not a file", file=str(path)) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", file=str(path), line=err.lineno) from None
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=str(path)) from None
    except RecursionError:
        raise InputError("not valid JSON (nested too deeply)", file=str(path)) from None
