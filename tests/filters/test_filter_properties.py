"""Property-based tests (hypothesis): the vectorized filter evaluator (`Filter.item_mask`, `Filter.user_mask`)
agrees with a plain-Python reference evaluator written here, on random small catalogues, interaction
histories, expressions drawn from the grammar (IN / NOT IN / comparisons, AND / OR, INCLUDE / EXCLUDE,
IF CurrentUser, `|`, parameters) and filter values.

The expressions are generated as small Python structures, rendered to text, and parsed by `Filter.parse`;
the reference evaluates the structures themselves, so the parser is checked too. The semantics the
reference spells out (see `personalize_torch.filters.evaluate`):
- categorical fields hold `|`-separated values; IN / = match when any value is one of the given texts
  (or, for a number given, when the field's single value reads as that number); NOT IN / != are the
  complement, so an empty field matches them;
- numeric fields compare as numbers, a missing value never matches IN / = / < ... (but does match != /
  NOT IN); a categorical field compares with < ... as the number its single value reads as;
- only each user's `keep` newest interactions per event type (case-insensitive) count; `*` is any type;
  `Interactions.EVENT_TYPE NOT IN (...)` selects the items (users) with a kept event of another type;
- an expression whose IF is false for a user does not apply to that user; an EXCLUDE expression missing
  a parameter does not apply; an INCLUDE expression missing one is an error;
- allowed = (union of the applying INCLUDE parts, or everything when none applies) minus the union of
  the applying EXCLUDE parts; padding (item index 0) and unknown users are never allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_torch.filters import Catalogue, Filter, FilterError

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None,
                    derandomize=True)

TOKENS = ["a", "b", "c"]
SIZES = ["1", "2", "10", "x"]
EVENT_TYPES = ["click", "Click", "PURCHASE", "view"]
ITEM_FIELDS = {"GENRE": "categorical", "SIZE": "categorical", "PRICE": "numeric"}
USER_FIELDS = {"TIER": "categorical", "AGE": "numeric"}
ORDER = {"<": lambda x, v: x < v, "<=": lambda x, v: x <= v, ">": lambda x, v: x > v, ">=": lambda x, v: x >= v}


# ---------------------------------------------------------------- the structures and their text

@dataclass(frozen=True)
class Value:
    kind: str   # "str", "num", "param", "star"
    text: str   # the string, the number as written, the parameter name

    def render(self) -> str:
        return {"str": f'"{self.text}"', "num": self.text, "param": f"${self.text}", "star": "*"}[self.kind]


@dataclass(frozen=True)
class Cond:
    dataset: str          # Items, Users, Interactions, CurrentUser
    field: str
    op: str
    values: tuple[Value, ...]

    def render(self) -> str:
        head = f"{self.dataset}.{self.field} {self.op} "
        if self.op in ("IN", "NOT IN"):
            return head + "(" + ", ".join(v.render() for v in self.values) + ")"
        return head + self.values[0].render()


@dataclass(frozen=True)
class Expr:
    action: str                              # INCLUDE / EXCLUDE
    target: str                              # ItemID / UserID
    where: tuple[tuple[Cond, ...], ...]      # OR of ANDs (AND binds tighter, as in the grammar)
    ifs: tuple[Cond, ...] = ()

    def render(self) -> str:
        text = f"{self.action} {self.target} WHERE " + " OR ".join(" AND ".join(c.render() for c in group)
                                                                   for group in self.where)
        return text + (" IF " + " AND ".join(c.render() for c in self.ifs) if self.ifs else "")

    def params(self) -> set[str]:
        return {v.text for group in self.where for c in group for v in c.values if v.kind == "param"} | \
            {v.text for c in self.ifs for v in c.values if v.kind == "param"}


# ---------------------------------------------------------------- strategies

def _value_for(kind: str):
    """A literal for a field of this kind (strings for categorical fields may read as numbers)."""
    if kind == "numeric":
        return st.one_of(st.sampled_from(["1", "2", "5", "2.0"]).map(lambda t: Value("num", t)),
                         st.just(Value("str", "5")))
    return st.one_of(st.sampled_from(TOKENS + SIZES + ["zz"]).map(lambda t: Value("str", t)),
                     st.sampled_from(["1", "2", "2.0"]).map(lambda t: Value("num", t)))


@st.composite
def field_cond(draw, dataset: str) -> Cond:
    fields = ITEM_FIELDS if dataset == "Items" else USER_FIELDS
    field = draw(st.sampled_from(sorted(fields)))
    kind = fields[field]
    op = draw(st.sampled_from(["IN", "NOT IN", "=", "!=", "<", "<=", ">", ">="]))
    if op in ("<", "<=", ">", ">="):  # numbers or a one-number parameter
        value = draw(st.one_of(st.sampled_from(["1", "2", "5", "20"]).map(lambda t: Value("num", t)),
                               st.just(Value("param", "N"))))
        return Cond(dataset, field, op, (value,))
    if op in ("IN", "NOT IN"):
        values = draw(st.lists(_value_for(kind), min_size=1, max_size=3))
        if op == "IN" and draw(st.booleans()):   # parameters: not with NOT IN (a Personalize rule)
            values.append(Value("param", "G"))
        return Cond(dataset, field, op, tuple(values))
    value = draw(st.one_of(_value_for(kind), st.just(Value("param", "G"))))
    return Cond(dataset, field, op, (value,))


@st.composite
def interactions_cond(draw) -> Cond:
    op = draw(st.sampled_from(["IN", "NOT IN"]))
    pool = st.one_of(st.sampled_from(["click", "purchase", "VIEW", "other"]).map(lambda t: Value("str", t)),
                     st.just(Value("star", "*")), st.just(Value("str", "*")))
    values = draw(st.lists(pool, min_size=1, max_size=2))
    if op == "IN" and draw(st.booleans()):
        values.append(Value("param", "E"))
    return Cond("Interactions", "EVENT_TYPE", op, tuple(values))


def cond_of(dataset: str):
    return interactions_cond() if dataset == "Interactions" else field_cond(dataset)


@st.composite
def expression(draw, target: str) -> Expr:
    # Users conditions give the same answer for every item: drawn less often for ItemID filters
    datasets = ["Items", "Items", "Interactions", "Interactions", "Users"] if target == "ItemID" else \
        ["Users", "Interactions"]
    dataset = draw(st.sampled_from(datasets))
    groups = draw(st.lists(st.lists(cond_of(dataset), min_size=1, max_size=2).map(tuple), min_size=1, max_size=2))
    ifs = ()
    if target == "ItemID" and draw(st.integers(0, 3)) == 0:
        ifs = tuple(draw(st.lists(field_cond("CurrentUser"), min_size=1, max_size=2)))
    # EXCLUDE twice as often: an INCLUDE that matches nothing leaves an empty mask, which checks little
    return Expr(draw(st.sampled_from(["INCLUDE", "EXCLUDE", "EXCLUDE"])), target, tuple(groups), ifs)


@st.composite
def filter_values(draw) -> dict[str, str]:
    """Parameters as Personalize sends them; each is missing one time in four."""
    pools = {"G": st.lists(st.sampled_from(['"a"', '"b"', '"1"', "2", '"x"']), min_size=1, max_size=2,
                           unique=True).map(",".join),
             "N": st.sampled_from(["1", "2", "5", "20"]),
             "E": st.sampled_from(['"click"', '"purchase","view"', '"*"', '"OTHER"'])}
    return {name: draw(pool) for name, pool in pools.items() if draw(st.integers(0, 3)) > 0}


def _subset(pool: list[str], bits: int) -> str | None:
    """The values of `pool` picked by the bits of `bits`, `|`-joined (None for none)."""
    return "|".join(v for k, v in enumerate(pool) if bits >> k & 1) or None


@st.composite
def world(draw):
    """Items (GENRE, SIZE: categorical multi-values; PRICE: numeric with missing values), users (TIER, AGE),
    interactions and the number of newest interactions per event type kept. Each row's values are drawn
    as one integer (cheaper to draw than a tuple, and it still shrinks towards the first choices)."""
    n_items, n_users = draw(st.integers(3, 8)), draw(st.integers(2, 5))
    item_ids, user_ids = [f"i{k}" for k in range(n_items)], [f"u{k}" for k in range(n_users)]
    prices, ages = [1.0, 2.0, 5.0, math.nan], [1.0, 5.0, 20.0, math.nan]
    rows = draw(st.lists(st.integers(0, 8 * 16 * 4 - 1), min_size=n_items, max_size=n_items))
    items = pd.DataFrame({"ITEM_ID": item_ids,
                          "GENRE": [_subset(TOKENS, r % 8) for r in rows],
                          "SIZE": [_subset(SIZES, r // 8 % 16) for r in rows],
                          "PRICE": np.array([prices[r // 128] for r in rows], dtype=float)})
    rows = draw(st.lists(st.integers(0, 16 * 4 - 1), min_size=n_users, max_size=n_users))
    users = pd.DataFrame({"USER_ID": user_ids,
                          "TIER": [_subset(TOKENS + ["1"], r % 16) for r in rows],
                          "AGE": np.array([ages[r // 16] for r in rows], dtype=float)})
    codes = draw(st.lists(st.integers(0, n_users * n_items * 5 * 4 - 1), min_size=3 * n_users, max_size=40))
    interactions = pd.DataFrame({"USER_ID": [user_ids[c % n_users] for c in codes],
                                 "ITEM_ID": [item_ids[c // n_users % n_items] for c in codes],
                                 "TIMESTAMP": np.array([c // (n_users * n_items) % 5 for c in codes], dtype=np.int64),
                                 "EVENT_TYPE": [EVENT_TYPES[c // (n_users * n_items * 5)] for c in codes]},
                                columns=["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
    keep = draw(st.sampled_from([1, 2, 100]))
    return items, users, interactions, keep


# ---------------------------------------------------------------- the reference evaluator

def _tokens(cell) -> list[str]:
    return [] if cell is None or (isinstance(cell, float) and math.isnan(cell)) else \
        [t for t in str(cell).split("|") if t]


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _number(cell, kind: str) -> float:
    if kind == "numeric":
        return math.nan if cell is None or pd.isna(cell) else float(cell)
    toks = _tokens(cell)
    single = _as_number(toks[0]) if len(toks) == 1 else None
    return math.nan if single is None else single


def _parse_values(raw: str) -> list[Value]:
    """`"a","b"` -> strings, `2` -> a number (what filterValues carry in these tests)."""
    return [Value("str", p[1:-1]) if p.startswith('"') else Value("num", p) for p in raw.split(",")]


class Reference:
    def __init__(self, items: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame, keep: int):
        self.items = items.set_index("ITEM_ID").to_dict("index")
        self.item_ids = list(items["ITEM_ID"])
        self.users = users.set_index("USER_ID").to_dict("index")
        self.user_ids = list(users["USER_ID"])
        self.kept: dict[str, list[tuple[str, str]]] = {u: [] for u in self.user_ids}   # (item, type lower-case)
        rows = list(interactions.itertuples(index=False))
        for user in self.user_ids:
            for et in {r.EVENT_TYPE.lower() for r in rows}:
                mine = [(r.TIMESTAMP, n, r.ITEM_ID) for n, r in enumerate(rows)
                        if r.USER_ID == user and r.EVENT_TYPE.lower() == et]
                self.kept[user] += [(item, et) for _, _, item in sorted(mine)[-keep:]]

    @staticmethod
    def resolve(cond: Cond, values: dict) -> list[Value]:
        out = []
        for v in cond.values:
            out.extend(_parse_values(values[v.text]) if v.kind == "param" else [v])
        return out

    @staticmethod
    def field(cell, kind: str, op: str, values: list[Value]) -> bool:
        if op in ORDER:
            return ORDER[op](_number(cell, kind), float(values[0].text))
        if kind == "numeric":
            x = _number(cell, kind)
            hit = any(_as_number(v.text) == x for v in values)
        else:
            hit = any(v.text in _tokens(cell) for v in values) or \
                any(v.kind == "num" and _number(cell, kind) == float(v.text) for v in values)
        return hit if op in ("IN", "=") else not hit

    def event_matches(self, cond: Cond, values: dict, event_type: str) -> bool:
        resolved = self.resolve(cond, values)
        any_type = any(v.kind == "star" or v.text == "*" for v in resolved)
        match = any_type or event_type in {v.text.lower() for v in resolved}
        return match if cond.op == "IN" else not match

    def cond(self, cond: Cond, user: str | None, item: str | None, values: dict) -> bool:
        if cond.dataset == "Interactions":
            return any(self.event_matches(cond, values, et) for it, et in self.kept.get(user, [])
                       if item is None or it == item)
        if cond.dataset in ("Users", "CurrentUser"):
            cell = self.users.get(user, {}).get(cond.field)
            return self.field(cell, USER_FIELDS[cond.field], cond.op, self.resolve(cond, values))
        return self.field(self.items[item][cond.field], ITEM_FIELDS[cond.field], cond.op, self.resolve(cond, values))

    def where(self, expr: Expr, user, item, values) -> bool:
        return any(all(self.cond(c, user, item, values) for c in group) for group in expr.where)

    def applies(self, expr: Expr, values: dict) -> bool:
        if expr.params() - set(values):
            if expr.action == "INCLUDE":
                raise FilterError("an INCLUDE expression is missing a parameter")
            return False
        return True

    def item_mask(self, exprs: list[Expr], users: list[str], values: dict) -> np.ndarray:
        applying = [e for e in exprs if self.applies(e, values)]
        out = np.zeros((len(users), len(self.item_ids) + 1), dtype=bool)
        for b, user in enumerate(users):
            active = [e for e in applying if all(self.cond(c, user, None, values) for c in e.ifs)]
            includes = [e for e in active if e.action == "INCLUDE"]
            for k, item in enumerate(self.item_ids):
                included = not includes or any(self.where(e, user, item, values) for e in includes)
                excluded = any(self.where(e, user, item, values) for e in active if e.action == "EXCLUDE")
                out[b, k + 1] = included and not excluded
        return out

    def user_mask(self, exprs: list[Expr], users: list[str], values: dict) -> np.ndarray:
        applying = [e for e in exprs if self.applies(e, values)]
        includes = [e for e in applying if e.action == "INCLUDE"]
        out = np.zeros(len(users), dtype=bool)
        for b, user in enumerate(users):
            if user not in self.users:
                continue
            included = not includes or any(self.where(e, user, None, values) for e in includes)
            excluded = any(self.where(e, user, None, values) for e in applying if e.action == "EXCLUDE")
            out[b] = included and not excluded
        return out


def build(items, users, interactions, keep) -> Catalogue:
    return Catalogue.build(items["ITEM_ID"], items=items, users=users, interactions=interactions,
                           max_interactions_per_event_type=keep)


def compare(expected_fn, actual_fn):
    """Both raise FilterError (a missing INCLUDE parameter) or both give the same mask."""
    try:
        expected = expected_fn()
    except FilterError:
        with pytest.raises(FilterError, match="required by an INCLUDE expression"):
            actual_fn()
        return None
    actual = actual_fn().numpy()
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected), np.argwhere(actual != expected)[:5]
    return expected


# ---------------------------------------------------------------- the properties

@SETTINGS
@given(world=world(), exprs=st.lists(expression("ItemID"), min_size=1, max_size=3), values=filter_values(),
       users=st.lists(st.sampled_from(["u0", "u1", "u2", "u0", "u1", "ghost"]), min_size=1, max_size=4))
def test_item_mask_matches_the_reference(world, exprs, values, users):
    items, user_table, interactions, keep = world
    text = " | ".join(e.render() for e in exprs)
    f = Filter.parse(text)
    catalogue = build(items, user_table, interactions, keep)
    ref = Reference(items, user_table, interactions, keep)
    mask = compare(lambda: ref.item_mask(exprs, users, values),
                   lambda: f.item_mask(catalogue, catalogue.user_rows(users), values))
    if mask is not None:
        assert not mask[:, 0].any()


@SETTINGS
@given(world=world(), exprs=st.lists(expression("UserID"), min_size=1, max_size=3), values=filter_values())
def test_user_mask_matches_the_reference(world, exprs, values):
    items, user_table, interactions, keep = world
    f = Filter.parse(" | ".join(e.render() for e in exprs))
    catalogue = build(items, user_table, interactions, keep)
    ref = Reference(items, user_table, interactions, keep)
    users = list(catalogue.user_ids) + ["ghost"]
    compare(lambda: ref.user_mask(exprs, users, values),
            lambda: f.user_mask(catalogue, values, user_rows=catalogue.user_rows(users)))


@settings(SETTINGS, max_examples=50)
@given(exprs=st.lists(expression("ItemID"), min_size=1, max_size=3))
def test_canonical_text_parses_back_to_the_same_filter(exprs):
    f = Filter.parse(" | ".join(e.render() for e in exprs))
    assert Filter.parse(str(f)).expressions == f.expressions
