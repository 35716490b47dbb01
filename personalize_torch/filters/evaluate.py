"""Parsed filter + catalogue + request -> boolean masks, with numpy array operations only.

Shapes while evaluating an ItemID filter for B users over N = n_items items: an Items condition gives
(N,) (or (B, N) when it compares with CurrentItem), a Users condition (B, 1), an Interactions condition
(B, N), an IF condition (B,); AND / OR combine them by broadcasting. A UserID filter evaluates every
condition to (R,) over the R user rows asked about.

Semantics (Personalize's where it documents them, otherwise the choice written here):
- categorical fields match IN / = when ANY of a row's `|`-separated values is one of the given values;
  NOT IN / != are the complement, so a row without a value matches them;
- numeric comparisons on a missing value are false (but != is true, the complement of =); a string
  field compares as a number when its (single) value reads as one;
- event types match case-insensitively, everything else exactly; `*` (or "*") is any event type; only
  each user's most recent interactions per event type count (the catalogue keeps them);
- an expression whose IF is false for a user does not apply to that user; an EXCLUDE expression with a
  missing parameter does not apply at all, an INCLUDE expression with one is an error;
- allowed = (union of the applying INCLUDE parts, or everything when none applies) minus the union of
  the applying EXCLUDE parts; padding (item 0) is never allowed.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

import numpy as np

from personalize_torch.filters.catalogue import Catalogue, Column, csr_gather
from personalize_torch.filters.errors import FilterError, quoted
from personalize_torch.filters.nodes import (
    CURRENT_USER,
    EXCLUDE,
    IN,
    INCLUDE,
    INTERACTIONS,
    ITEMS,
    NOT_IN,
    USERS,
    And,
    Condition,
    CurrentItemField,
    Expression,
    Literal,
    Node,
    Param,
    Wildcard,
)

_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_POSITIVE = {IN: True, "=": True, NOT_IN: False, "!=": False}
_ITEM_CACHE_SIZE = 256


class _Missing(Exception):
    def __init__(self, param: Param):
        self.param = param


# ---- validation against a catalogue

def validate(expressions: tuple[Expression, ...], catalogue: Catalogue) -> None:
    """FilterError for a field the catalogue lacks (naming the fields it has), a textual or boolean
    field, or a dataset the catalogue has no data for."""
    for expr in expressions:
        for cond in expr.conditions():
            ref = cond.field
            if ref.dataset == INTERACTIONS:
                if catalogue.events is None:
                    raise FilterError(f"the filter reads {ref} but the catalogue has no Interactions data", ref.pos)
                continue
            dataset = USERS if ref.dataset == CURRENT_USER else ref.dataset
            _check_field(catalogue, dataset, ref.name, str(ref), ref.name_pos)
            for v in cond.values:
                if isinstance(v, CurrentItemField):
                    _check_field(catalogue, ITEMS, v.name, str(v), v.pos)


def _check_field(catalogue: Catalogue, dataset: str, name: str, shown: str, pos: int | None) -> None:
    frame = catalogue.frame(dataset)
    if frame is None:
        raise FilterError(f"the filter reads {shown} but the catalogue has no {dataset} metadata", pos)
    if name not in frame.columns:
        fields = ", ".join(str(c) for c in frame.columns)
        raise FilterError(f"{dataset} has no field {quoted(name)}; its fields are {fields}", pos)
    if dataset == ITEMS and name in catalogue.textual_fields:
        raise FilterError(f"{shown} is a textual field; Personalize can't filter on free text", pos)
    if catalogue.column(dataset, name).kind == "boolean":
        raise FilterError(f"{shown} is a boolean field; Personalize can't filter on booleans "
                          f'(use a string field with "True" / "False", or 0 / 1)', pos)


# ---- parameters

def _resolve(cond: Condition, values: Mapping[str, tuple[Literal, ...]]) -> list:
    out: list = []
    for v in cond.values:
        if isinstance(v, Param):
            if v.name not in values:
                raise _Missing(v)
            out.extend(values[v.name])
        else:
            out.append(v)
    return out


def _one_number(cond: Condition, resolved: list) -> float:
    src = cond.values[0]
    what = f"filter value {src}" if isinstance(src, Param) else str(src)
    if len(resolved) != 1:
        raise FilterError(f"{what}: {cond.op} compares with one number, got {len(resolved)} values", src.pos)
    value = resolved[0]
    try:
        return float(value.value)
    except (TypeError, ValueError):
        raise FilterError(f"{what}: {cond.op} compares numbers, got {quoted(str(value.value))}", src.pos) from None


# ---- field conditions

def _gather_numbers(col: Column, rows: np.ndarray | None) -> np.ndarray:
    if rows is None:
        return col.numbers
    return np.where(rows >= 0, col.numbers[np.maximum(rows, 0)], np.nan)


def _equals(col: Column, literals: list[Literal], rows: np.ndarray | None) -> np.ndarray:
    """Rows (all, or `rows`) whose value (any of its values) equals one of `literals`."""
    numbers = []
    for lit in literals:
        try:
            numbers.append(float(lit.value))
        except ValueError:
            pass
    if col.kind == "numeric":
        return np.isin(_gather_numbers(col, rows), np.asarray(numbers, dtype=np.float64))
    hit = col.rows_with_codes(col.token_codes(lit.text for lit in literals), rows)
    numeric_literals = [float(lit.value) for lit in literals if lit.is_number]
    if numeric_literals:  # 18 matches "18.0" too
        hit |= np.isin(_gather_numbers(col, rows), np.asarray(numeric_literals, dtype=np.float64))
    return hit


def _field_match(col: Column, cond: Condition, resolved: list, rows: np.ndarray | None) -> np.ndarray:
    """The condition over a column's rows (all, or `rows`) for fixed values."""
    if cond.op in _ORDER:
        return _ORDER[cond.op](_gather_numbers(col, rows), _one_number(cond, resolved))
    hit = _equals(col, resolved, rows)
    return hit if _POSITIVE[cond.op] else ~hit


def _current_item_match(catalogue: Catalogue, col: Column, cond: Condition, refs: list[CurrentItemField],
                        current_items: np.ndarray) -> np.ndarray:
    """(B, N): items whose field compares as asked with the field of each row's current item."""
    B, N = len(current_items), catalogue.n_items
    cur_rows = np.where(current_items > 0, current_items, -1)
    out = np.zeros((B, N), dtype=bool)
    for ref in refs:
        cur = catalogue.column(ITEMS, ref.name)
        if cond.op in _ORDER or col.kind == "numeric" or cur.kind == "numeric":
            cmp = _ORDER.get(cond.op, operator.eq)
            out |= cmp(col.numbers[None, :], _gather_numbers(cur, cur_rows)[:, None])
            continue
        pos, owner = csr_gather(cur.offsets, cur_rows)               # the current items' values
        codes = col.tokens.get_indexer(cur.tokens[cur.codes[pos]]) if cur is not col else cur.codes[pos]
        ok = codes >= 0
        owner, codes = owner[ok], codes[ok]
        inv_offsets, inv_rows = col.inverse()
        item_pos, pair = csr_gather(inv_offsets, codes)               # items sharing one of them
        out[owner[pair], inv_rows[item_pos]] = True
    return out


def _interactions_match(catalogue: Catalogue, cond: Condition, resolved: list, rows: np.ndarray):
    """(positions of the matching kept events, their index in `rows`)."""
    events = catalogue.events
    pos, owner = csr_gather(events.offsets, rows)
    anything = any(isinstance(v, Wildcard) or (isinstance(v, Literal) and v.text == "*") for v in resolved)
    if anything:
        hit = np.ones(pos.size, dtype=bool)
    else:
        hit = events.type_mask(v.text for v in resolved)[events.type_code[pos]]
    if cond.op == NOT_IN:
        hit = ~hit
    return pos[hit], owner[hit]


# ---- trees

def _item_condition(req: _Request, cond: Condition) -> np.ndarray:
    resolved = _resolve(cond, req.values)
    ref = cond.field
    B = len(req.rows)
    if ref.dataset == INTERACTIONS:
        pos, owner = _interactions_match(req.catalogue, cond, resolved, req.rows)
        out = np.zeros((B, req.catalogue.n_items), dtype=bool)
        out[owner, req.catalogue.events.item_idx[pos]] = True
        return out
    if ref.dataset in (USERS, CURRENT_USER):
        col = req.catalogue.column(USERS, ref.name)
        hit = _field_match(col, cond, resolved, req.rows)
        return hit if ref.dataset == CURRENT_USER else hit[:, None]
    col = req.catalogue.column(ITEMS, ref.name)
    refs = [v for v in resolved if isinstance(v, CurrentItemField)]
    literals = [v for v in resolved if not isinstance(v, CurrentItemField)]
    if not refs:  # the same for every user: cached per catalogue
        cache = req.catalogue.item_condition_cache
        key = (ref.name, cond.op, tuple((v.is_number, v.value, v.text) for v in literals))
        if key not in cache:
            if len(cache) >= _ITEM_CACHE_SIZE:
                cache.clear()
            mask = _field_match(col, cond, literals, None)
            mask.flags.writeable = False
            cache[key] = mask
        return cache[key]
    if req.current_items is None:
        raise FilterError(f"the filter compares with {refs[0]}: give the request's item (current_items) "
                          f"for related-items recommendations", refs[0].pos)
    hit = _current_item_match(req.catalogue, col, cond, refs, req.current_items)
    if literals:
        hit = hit | _equals(col, literals, None)
    return hit if _POSITIVE.get(cond.op, True) else ~hit


def _user_condition(req: _Request, cond: Condition) -> np.ndarray:
    resolved = _resolve(cond, req.values)
    if cond.field.dataset == INTERACTIONS:
        _, owner = _interactions_match(req.catalogue, cond, resolved, req.rows)
        return np.bincount(owner, minlength=len(req.rows)) > 0
    return _field_match(req.catalogue.column(USERS, cond.field.name), cond, resolved, req.rows)


def _tree(node: Node, leaf) -> np.ndarray:
    if isinstance(node, Condition):
        return leaf(node)
    combine = np.logical_and if isinstance(node, And) else np.logical_or
    result = _tree(node.operands[0], leaf)
    for operand in node.operands[1:]:
        result = combine(result, _tree(operand, leaf))
    return result


class _Request:
    def __init__(self, catalogue: Catalogue, rows: np.ndarray, values: Mapping[str, tuple[Literal, ...]],
                 current_items: np.ndarray | None = None):
        self.catalogue = catalogue
        self.rows = rows
        self.values = values
        self.current_items = current_items


def _applies(expr: Expression, values: Mapping) -> bool:
    """False when an EXCLUDE expression lacks a parameter; FilterError when an INCLUDE one does."""
    missing = [name for name in expr.parameters() if name not in values]
    if not missing:
        return True
    if expr.action == EXCLUDE:
        return False
    param = next(v for c in expr.conditions() for v in c.values if isinstance(v, Param) and v.name == missing[0])
    raise FilterError(f"filter value ${missing[0]} is required by an INCLUDE expression "
                      f"(only EXCLUDE expressions may leave parameters out)", param.pos)


def _or_rows(target: np.ndarray, where: np.ndarray, active: np.ndarray) -> None:
    """target (B, N) |= where in the `active` rows (bool (B,)); `where` is (N,) (Items), (B, N)
    (Interactions, CurrentItem) or (B, 1) (Users: one answer per row).

    Broadcasting a (B, 1) column against (B, N) takes numpy's strided slow path (about 100 us for one
    100,000-item row, 8 ms for 64 rows), so per-row answers fill whole rows, and inactive rows are
    skipped by row selection rather than by AND-ing with a column.
    """
    if where.ndim == 2 and where.shape[1] == 1 and target.shape[1] != 1:
        target[active & where[:, 0]] = True
    elif active.all():
        np.logical_or(target, where, out=target)
    elif active.any():
        rows = np.flatnonzero(active)
        target[rows] |= where if where.ndim == 1 else where[rows]


def item_mask(expressions: tuple[Expression, ...], catalogue: Catalogue, rows: np.ndarray,
              values: Mapping[str, tuple[Literal, ...]], current_items: np.ndarray | None = None) -> np.ndarray:
    """(B, n_items) bool: the items each user row may be recommended."""
    req = _Request(catalogue, rows, values, current_items)
    B, N = len(rows), catalogue.n_items
    include = np.zeros((B, N), dtype=bool)
    has_include = np.zeros(B, dtype=bool)
    exclude = np.zeros((B, N), dtype=bool)
    for expr in expressions:
        if not _applies(expr, values):
            continue
        active = np.ones(B, dtype=bool)
        for cond in expr.if_conditions:
            active &= _item_condition(req, cond)
        where = _tree(expr.where, lambda c: _item_condition(req, c))
        target = include if expr.action == INCLUDE else exclude
        _or_rows(target, where, active)
        if expr.action == INCLUDE:
            has_include |= active
    allowed = include
    allowed[~has_include] = True  # rows no INCLUDE applies to: every item (a row fill; see _or_rows)
    np.greater(allowed, exclude, out=allowed)  # allowed and not excluded
    allowed[:, 0] = False
    return allowed


def user_mask(expressions: tuple[Expression, ...], catalogue: Catalogue, rows: np.ndarray,
              values: Mapping[str, tuple[Literal, ...]]) -> np.ndarray:
    """(R,) bool over user `rows`: the users a user-segment job may return."""
    req = _Request(catalogue, rows, values)
    R = len(rows)
    include = np.zeros(R, dtype=bool)
    has_include = False
    exclude = np.zeros(R, dtype=bool)
    for expr in expressions:
        if not _applies(expr, values):
            continue
        where = np.broadcast_to(_tree(expr.where, lambda c: _user_condition(req, c)), (R,))
        if expr.action == INCLUDE:
            include |= where
            has_include = True
        else:
            exclude |= where
    allowed = include if has_include else np.ones(R, dtype=bool)
    return allowed & ~exclude & (rows >= 0)
