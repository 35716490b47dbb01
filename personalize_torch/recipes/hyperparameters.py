"""Hyperparameters as Personalize sends them: `{"hidden_dimension": "64", "recency_mask": "true"}`.

Personalize's solution configs carry every value as a string; `coerce` turns each into the type of
the recipe's default, with an error naming the parameter when it cannot.
"""

from __future__ import annotations

from personalize_torch.errors import InputError


def coerce(name: str, value, default):
    """`value` converted to the type of `default` (bool / int / float / str); None stays None."""
    if value is None or default is None or not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(default, int):
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise InputError(f"expected a {type(default).__name__}, got {value!r}", column=name) from None
    return value


def check_range(name: str, value, low, high) -> None:
    if not low <= value <= high:
        raise InputError(f"must be between {low} and {high}, got {value}", column=name)
