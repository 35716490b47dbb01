"""Request-time filter values (Personalize's `filterValues`) -> lists of `Literal`s.

Personalize sends each parameter as one string: a comma-separated list of double-quoted strings
(``"\\"comedy\\",\\"drama\\""``) or a number (``"10"``). Also accepted, for callers in Python and for
hand-written requests: unquoted comma-separated text (``"comedy, drama"``: each piece a string, or a
number when it reads as one), a number, or a list of strings / numbers. An empty value counts as
missing.
"""

from __future__ import annotations

from collections.abc import Mapping

from personalize_torch.filters.errors import FilterError, quoted
from personalize_torch.filters.nodes import Literal
from personalize_torch.filters.tokenizer import Kind, tokenize


def parse_filter_values(filter_values: Mapping | None) -> dict[str, tuple[Literal, ...]]:
    """{name: values} for every non-empty entry; keys may be given with or without the leading `$`."""
    if filter_values is None:
        return {}
    if not isinstance(filter_values, Mapping):
        raise FilterError(f"filterValues must be a map of parameter names to values, "
                          f"got {type(filter_values).__name__}")
    out: dict[str, tuple[Literal, ...]] = {}
    for key, raw in filter_values.items():
        name = str(key)[1:] if str(key).startswith("$") else str(key)
        values = parse_filter_value(name, raw)
        if values:
            out[name] = values
    return out


def parse_filter_value(name: str, raw) -> tuple[Literal, ...]:
    if raw is None:
        return ()
    if isinstance(raw, bool):
        raise FilterError(f"filter value ${name}: expected text or a number, got a boolean")
    if isinstance(raw, (int, float)):
        return (Literal.number(repr(raw) if isinstance(raw, float) else str(raw)),)
    if isinstance(raw, (list, tuple)):
        out: list[Literal] = []
        for item in raw:
            out.extend(parse_filter_value(name, item) if not isinstance(item, str) else (_bare(item),))
        return tuple(out)
    if not isinstance(raw, str):
        raise FilterError(f"filter value ${name}: expected a string, got {type(raw).__name__}")
    if not raw.strip():
        return ()
    if '"' not in raw:
        return tuple(_bare(piece.strip()) for piece in raw.split(",") if piece.strip())
    return _quoted_list(name, raw)


def _bare(text: str) -> Literal:
    try:
        float(text)
    except ValueError:
        return Literal.string(text)
    return Literal.number(text)


def _quoted_list(name: str, raw: str) -> tuple[Literal, ...]:
    try:
        tokens = tokenize(raw)
    except FilterError as err:
        raise FilterError(f"filter value ${name}: {err.message}") from None
    values: list[Literal] = []
    i = 0
    while True:
        tok = tokens[i]
        if tok.kind is Kind.STRING:
            values.append(Literal.string(tok.text))
        elif tok.kind is Kind.NUMBER:
            values.append(Literal.number(tok.text))
        else:
            raise FilterError(f'filter value ${name}: expected "value", "value", ... at character {tok.pos + 1} '
                              f"of {quoted(raw)}, got {tok.shown}")
        i += 1
        if tokens[i].kind is Kind.END:
            return tuple(values)
        if tokens[i].kind is not Kind.COMMA:
            raise FilterError(f"filter value ${name}: expected \",\" at character {tokens[i].pos + 1} of "
                              f"{quoted(raw)}, got {tokens[i].shown}")
        i += 1
