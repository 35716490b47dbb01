"""Recursive-descent parser: filter expression text -> tuple of `Expression`s (see `nodes`).

Grammar (Personalize publishes none; assembled from its documentation and examples)::

    filter     := expression ("|" expression)*
    expression := ("INCLUDE" | "EXCLUDE") ("ItemID" | "UserID") "WHERE" or_cond ["IF" if_cond]
    or_cond    := and_cond ("OR" and_cond)*             AND binds tighter than OR, as in SQL
    and_cond   := condition ("AND" condition)*
    condition  := Dataset "." FIELD ( ("IN" | "NOT IN") ( "(" values ")" | CurrentItem "." FIELD )
                                    | ("=" | "!=" | "<" | "<=" | ">" | ">=") ( value | "(" value ")" ) )
    if_cond    := CurrentUser "." FIELD <same operators and values> ("AND" <the same>)*
    values     := value ("," value)*                    "*" only with Interactions.EVENT_TYPE
    value      := "\\"string\\"" | number | $PARAMETER | CurrentItem "." FIELD | "*"
    Dataset    := Items | Interactions | Users

Keywords, dataset names and CurrentUser / CurrentItem are matched case-insensitively (and `NOT_IN`
and `<>` are read as `NOT IN` and `!=`); field names, parameter names and values are exact.

Checks made here, without data: the conditions of one expression read one dataset; all expressions
filter the same target (ItemID or UserID); UserID expressions read Users or Interactions and have no
IF; Interactions conditions read EVENT_TYPE only (the one interactions field Personalize filters on),
with IN / NOT IN; `*` only for Interactions.EVENT_TYPE; `CurrentItem` only in Items conditions of ItemID
expressions; no parameters with NOT IN (a Personalize rule: use IN with the other action instead);
ordering comparisons take numbers or parameters. Unknown fields are found by `Filter.validate`, which
knows the catalogue.
"""

from __future__ import annotations

from personalize_torch.filters.errors import FilterError, quoted
from personalize_torch.filters.nodes import (
    COMPARISONS,
    CURRENT_ITEM,
    CURRENT_USER,
    DATASETS,
    EXCLUDE,
    IN,
    INCLUDE,
    INTERACTIONS,
    ITEM_ID,
    ITEMS,
    NOT_IN,
    USER_ID,
    And,
    Condition,
    CurrentItemField,
    Expression,
    FieldRef,
    Literal,
    Node,
    Or,
    Param,
    Value,
    Wildcard,
)
from personalize_torch.filters.tokenizer import Kind, Token, tokenize

MAX_EXPRESSION_LENGTH = 2500  # Personalize's limit on filterExpression
EVENT_TYPE = "EVENT_TYPE"
_COMPARISON_LIST = "IN, NOT IN, =, !=, <, <=, > or >="
_DATASET_BY_UPPER = {name.upper(): name for name in DATASETS}
_ACTION_NAMES = ("ACTIONID", "ACTIONS", "ACTION", "ACTION_INTERACTIONS")


def parse(text: str) -> tuple[Expression, ...]:
    """Parse a filter expression; FilterError (an InputError) says where and what was expected."""
    if not isinstance(text, str):
        raise FilterError(f"a filter expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise FilterError(f"a filter expression has at most {MAX_EXPRESSION_LENGTH} characters, "
                          f"this one has {len(text)}")
    if not text.strip():
        raise FilterError("the filter expression is empty; expected INCLUDE or EXCLUDE", 1)
    expressions = _Parser(tokenize(text)).filter()
    targets = {e.target for e in expressions}
    if len(targets) > 1:
        other = next(e for e in expressions if e.target != expressions[0].target)
        raise FilterError(f"all expressions of a filter must filter the same thing: "
                          f"{expressions[0].target}, then {other.target}", other.pos)
    return expressions


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.i = 0

    # ---- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_word(self, *words: str) -> bool:
        return self.tok.kind is Kind.WORD and self.tok.upper() in {w.upper() for w in words}

    def fail(self, expected: str, tok: Token | None = None, hint: str = ""):
        tok = tok or self.tok
        raise FilterError(f"expected {expected}, got {tok.shown}{hint}", tok.pos + 1)

    def expect(self, kind: Kind, expected: str) -> Token:
        if self.tok.kind is not kind:
            self.fail(expected)
        return self.advance()

    def keyword(self, *words: str) -> str:
        """The next token if it is one of `words` (case-insensitive), as `words` spells it; else fail."""
        if not self.is_word(*words):
            self.fail(" or ".join(words))
        upper = self.advance().upper()
        return next(w for w in words if w.upper() == upper)

    # ---- grammar
    def filter(self) -> tuple[Expression, ...]:
        expressions = [self.expression()]
        while self.tok.kind is Kind.PIPE:
            self.advance()
            expressions.append(self.expression())
        if self.tok.kind is not Kind.END:
            self.fail('"|" or end of expression')
        return tuple(expressions)

    def expression(self) -> Expression:
        start = self.tok
        action = self.keyword(INCLUDE, EXCLUDE)
        if self.tok.upper() in _ACTION_NAMES:
            self.fail("ItemID or UserID", hint=" (action recommendations are not supported)")
        target = self.keyword(ITEM_ID, USER_ID)
        self.keyword("WHERE")
        where = self.or_cond(target)
        if_conditions: list[Condition] = []
        if self.is_word("IF"):
            if_tok = self.advance()
            if target == USER_ID:
                raise FilterError("IF CurrentUser conditions are only allowed in ItemID expressions", if_tok.pos + 1)
            if_conditions.append(self.condition(target, current_user=True))
            while self.is_word("AND"):
                self.advance()
                if_conditions.append(self.condition(target, current_user=True))
            if self.is_word("OR"):
                self.fail('AND, "|" or end of expression', hint=" (IF conditions are joined with AND)")
        elif self.tok.kind not in (Kind.PIPE, Kind.END):
            self.fail('AND, OR, IF, "|" or end of expression')
        expr = Expression(action, target, where, tuple(if_conditions), start.pos + 1)
        self.check_one_dataset(expr)
        return expr

    def or_cond(self, target: str) -> Node:
        operands = [self.and_cond(target)]
        while self.is_word("OR"):
            self.advance()
            operands.append(self.and_cond(target))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_cond(self, target: str) -> Node:
        operands: list[Node] = [self.condition(target)]
        while self.is_word("AND"):
            self.advance()
            operands.append(self.condition(target))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def field_ref(self, target: str, current_user: bool) -> FieldRef:
        tok = self.tok
        expected = "CurrentUser.FIELD" if current_user else "Dataset.FIELD (Items, Interactions or Users)"
        if tok.kind is not Kind.WORD:
            self.fail(expected)
        self.advance()
        upper = tok.text.upper()
        if current_user:
            if upper != CURRENT_USER.upper():
                self.fail("CurrentUser.FIELD", tok, hint=" (IF conditions test the current user)")
            dataset = CURRENT_USER
        elif upper in _DATASET_BY_UPPER:
            dataset = _DATASET_BY_UPPER[upper]
        elif upper == CURRENT_USER.upper():
            raise FilterError("CurrentUser conditions go after IF, at the end of an expression", tok.pos + 1)
        elif upper in _ACTION_NAMES:
            raise FilterError(f"unknown dataset {quoted(tok.text)} (action recommendations are not supported); "
                              f"the datasets are Items, Interactions and Users", tok.pos + 1)
        else:
            if self.tok.kind is not Kind.DOT:
                self.fail(expected, tok)
            raise FilterError(f"unknown dataset {quoted(tok.text)}; the datasets are Items, Interactions and Users",
                              tok.pos + 1)
        self.expect(Kind.DOT, f'"." after {dataset}')
        name = self.expect(Kind.WORD, f"a field name after {dataset}.")
        ref = FieldRef(dataset, name.text, tok.pos + 1, name.pos + 1)
        if target == USER_ID and dataset == ITEMS:
            raise FilterError("UserID expressions filter users by Users or Interactions fields, not Items",
                              tok.pos + 1)
        if dataset == INTERACTIONS and ref.name != EVENT_TYPE:
            raise FilterError(f"Interactions has no filterable field {quoted(ref.name)}; Personalize filters "
                              f"interactions by EVENT_TYPE only", ref.name_pos)
        return ref

    def condition(self, target: str, current_user: bool = False) -> Condition:
        ref = self.field_ref(target, current_user)
        op_tok = self.tok
        if self.is_word("IN", "NOT_IN"):
            op = IN if self.advance().upper() == IN else NOT_IN
        elif self.is_word("NOT"):
            self.advance()
            if not self.is_word("IN"):
                self.fail("IN after NOT")
            self.advance()
            op = NOT_IN
        elif op_tok.kind is Kind.OP:
            op = self.advance().text
        else:
            self.fail(_COMPARISON_LIST)
        if op in (IN, NOT_IN):
            if self.is_word(CURRENT_ITEM):
                values: tuple[Value, ...] = (self.value(),)
            else:
                self.expect(Kind.LPAREN, f'"(" after {op}')
                values = self.value_list()
        else:
            if self.tok.kind is Kind.LPAREN:  # `Actions.VALUE > ($VALUE)` appears in Personalize's examples
                self.advance()
                values = (self.value(),)
                if self.tok.kind is Kind.COMMA:
                    self.fail('")"', hint=f" ({op} compares with one value)")
                self.expect(Kind.RPAREN, '")"')
            else:
                values = (self.value(),)
        cond = Condition(ref, op, values, ref.pos)
        self.check_condition(cond, target, op_tok)
        return cond

    def value_list(self) -> tuple[Value, ...]:
        values = [self.value()]
        while self.tok.kind is Kind.COMMA:
            self.advance()
            values.append(self.value())
        self.expect(Kind.RPAREN, '"," or ")"')
        return tuple(values)

    def value(self) -> Value:
        tok = self.tok
        if tok.kind is Kind.STRING:
            self.advance()
            return Literal.string(tok.text, tok.pos + 1)
        if tok.kind is Kind.NUMBER:
            self.advance()
            return Literal.number(tok.text, tok.pos + 1)
        if tok.kind is Kind.PARAM:
            self.advance()
            return Param(tok.text, tok.pos + 1)
        if tok.kind is Kind.STAR:
            self.advance()
            return Wildcard(tok.pos + 1)
        if self.is_word(CURRENT_ITEM):
            self.advance()
            self.expect(Kind.DOT, '"." after CurrentItem')
            name = self.expect(Kind.WORD, "a field name after CurrentItem.")
            return CurrentItemField(name.text, tok.pos + 1)
        self.fail('a value: "text", a number or $PARAMETER')

    # ---- checks that need no data
    def check_condition(self, cond: Condition, target: str, op_tok: Token) -> None:
        ref = cond.field
        for v in cond.values:
            if isinstance(v, Wildcard) and not (ref.dataset == INTERACTIONS and cond.op in (IN, NOT_IN)):
                raise FilterError("* (any value) is only allowed in Interactions.EVENT_TYPE IN (*)", v.pos)
            if isinstance(v, CurrentItemField) and not (ref.dataset == ITEMS and target == ITEM_ID):
                raise FilterError("CurrentItem values are only allowed in Items conditions of ItemID expressions",
                                  v.pos)
            if isinstance(v, Param) and cond.op == NOT_IN:
                raise FilterError(f"parameters can't be used with NOT IN (a Personalize rule); write "
                                  f"{ref} IN ({v}) and swap INCLUDE / EXCLUDE instead", v.pos)
            if cond.op in ("<", "<=", ">", ">=") and isinstance(v, Literal) and not v.is_number:
                try:
                    float(v.value)
                except ValueError:
                    raise FilterError(f"{cond.op} compares numbers; expected a number or $PARAMETER, "
                                      f"got {quoted(str(v))}", v.pos) from None
        if ref.dataset == INTERACTIONS and cond.op not in (IN, NOT_IN):
            raise FilterError(f"Interactions.EVENT_TYPE takes IN or NOT IN, not {cond.op}", op_tok.pos + 1)
        if cond.op in COMPARISONS and len(cond.values) != 1:  # pragma: no cover - the grammar allows one
            raise FilterError(f"{cond.op} compares with one value", op_tok.pos + 1)

    @staticmethod
    def check_one_dataset(expr: Expression) -> None:
        first = None
        for cond in expr.conditions():
            if cond.field.dataset == CURRENT_USER:
                continue
            if first is None:
                first = cond.field
            elif cond.field.dataset != first.dataset:
                raise FilterError(f"conditions joined by AND / OR must use one dataset: {first}, then "
                                  f"{cond.field}; join expressions on different datasets with \"|\"", cond.pos)
