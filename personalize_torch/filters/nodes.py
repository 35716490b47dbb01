"""The parsed form of a filter expression: small frozen dataclasses.

A `FilterTree` is a tuple of `Expression`s (the parts between ``|``). Each expression has an action
(INCLUDE / EXCLUDE), a target (ItemID / UserID), a WHERE tree of `Condition`s joined by `And` / `Or`,
and the conditions of an optional trailing IF (CurrentUser conditions, joined by AND).

Positions (`pos`) are 1-based character positions in the expression text, used in error messages.
`str(node)` writes a node back in canonical form (keywords upper-case, one space between tokens),
which parses to an equal tree apart from positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Dataset names as Personalize writes them; CURRENT_USER / CURRENT_ITEM are the request's user / item.
ITEMS, INTERACTIONS, USERS = "Items", "Interactions", "Users"
CURRENT_USER, CURRENT_ITEM = "CurrentUser", "CurrentItem"
DATASETS = (ITEMS, INTERACTIONS, USERS)

INCLUDE, EXCLUDE = "INCLUDE", "EXCLUDE"
ITEM_ID, USER_ID = "ItemID", "UserID"

IN, NOT_IN = "IN", "NOT IN"
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
OPERATORS = (IN, NOT_IN) + COMPARISONS


@dataclass(frozen=True)
class Literal:
    """A fixed value: a string (`"comedy"`) or a number (`100`, kept with the text it was written as)."""

    value: str | float
    text: str = ""  # for numbers: as written ("100", "1e2"); strings match categorical values by `text`
    pos: int | None = field(default=None, compare=False)

    @classmethod
    def string(cls, value: str, pos: int | None = None) -> Literal:
        return cls(value, value, pos)

    @classmethod
    def number(cls, text: str, pos: int | None = None) -> Literal:
        return cls(float(text), text, pos)

    @property
    def is_number(self) -> bool:
        return not isinstance(self.value, str)

    def __str__(self) -> str:
        if self.is_number:
            return self.text
        return '"' + self.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Param:
    """A placeholder (`$GENRE`) filled from the request's filterValues; names match case-sensitively."""

    name: str
    pos: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return "$" + self.name


@dataclass(frozen=True)
class Wildcard:
    """`*` in `Interactions.EVENT_TYPE IN (*)`: any event type."""

    pos: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return "*"


@dataclass(frozen=True)
class CurrentItemField:
    """`CurrentItem.FIELD` as a value: the field of the request's item (related-items recipes)."""

    name: str
    pos: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{CURRENT_ITEM}.{self.name}"


Value = Literal | Param | Wildcard | CurrentItemField


@dataclass(frozen=True)
class FieldRef:
    """`Dataset.FIELD`; dataset is one of DATASETS or CURRENT_USER (in IF conditions)."""

    dataset: str
    name: str
    pos: int | None = field(default=None, compare=False)       # of the dataset name
    name_pos: int | None = field(default=None, compare=False)  # of the field name


    def __str__(self) -> str:
        return f"{self.dataset}.{self.name}"


@dataclass(frozen=True)
class Condition:
    """`field op values`: IN / NOT IN take a list, comparisons exactly one value."""

    field: FieldRef
    op: str
    values: tuple[Value, ...]
    pos: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        if self.op in (IN, NOT_IN):
            if len(self.values) == 1 and isinstance(self.values[0], CurrentItemField):
                return f"{self.field} {self.op} {self.values[0]}"
            return f"{self.field} {self.op} ({', '.join(str(v) for v in self.values)})"
        return f"{self.field} {self.op} {self.values[0]}"


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(str(o) for o in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(str(o) for o in self.operands)


Node = Condition | And | Or


@dataclass(frozen=True)
class Expression:
    """One `INCLUDE|EXCLUDE ItemID|UserID WHERE ... [IF ...]` part of a filter."""

    action: str             # INCLUDE or EXCLUDE
    target: str             # ItemID or UserID
    where: Node
    if_conditions: tuple[Condition, ...] = ()
    pos: int | None = field(default=None, compare=False)

    @property
    def dataset(self) -> str:
        """The one dataset the WHERE conditions read (Items, Interactions or Users)."""
        return next(iter_conditions(self.where)).field.dataset

    def conditions(self):
        """Every condition of the expression, WHERE first, then IF."""
        yield from iter_conditions(self.where)
        yield from self.if_conditions

    def parameters(self) -> list[str]:
        """Names of the parameters the expression uses, in order of first use."""
        names: dict[str, None] = {}
        for cond in self.conditions():
            for v in cond.values:
                if isinstance(v, Param):
                    names.setdefault(v.name)
        return list(names)

    def __str__(self) -> str:
        text = f"{self.action} {self.target} WHERE {self.where}"
        if self.if_conditions:
            text += " IF " + " AND ".join(str(c) for c in self.if_conditions)
        return text


def iter_conditions(node: Node):
    if isinstance(node, Condition):
        yield node
    else:
        for operand in node.operands:
            yield from iter_conditions(operand)
