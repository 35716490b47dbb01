"""Split a filter expression into tokens, each with its 0-based offset in the text.

Tokens: words (keywords, dataset and field names: ``[A-Za-z_][A-Za-z0-9_]*``), ``$PARAMETERS``,
double-quoted strings (``\\"`` and ``\\\\`` escape a quote and a backslash), numbers (``-1``, ``2.5``,
``1e3``), the operators ``= != < <= > >=``, and ``. , ( ) | *``. Whitespace (spaces, tabs, newlines)
separates tokens and is otherwise ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from personalize_torch.filters.errors import FilterError, quoted


class Kind(Enum):
    WORD = "word"
    PARAM = "parameter"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    DOT = "."
    COMMA = ","
    LPAREN = "("
    RPAREN = ")"
    PIPE = "|"
    STAR = "*"
    END = "end of expression"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str       # as written (for STRING: the unescaped value, for PARAM: the name without "$")
    pos: int        # 0-based offset of the token's first character

    @property
    def shown(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.END:
            return "end of expression"
        if self.kind is Kind.STRING:
            return quoted(f'"{self.text}"')
        if self.kind is Kind.PARAM:
            return quoted("$" + self.text)
        return quoted(self.text)

    def upper(self) -> str:
        return self.text.upper() if self.kind is Kind.WORD else ""


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"\s+")
_OPERATORS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_PUNCT = {".": Kind.DOT, ",": Kind.COMMA, "(": Kind.LPAREN, ")": Kind.RPAREN, "|": Kind.PIPE, "*": Kind.STAR}


def tokenize(text: str) -> list[Token]:
    """Tokens of `text`, ending with one END token; FilterError on a character no token can start with."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i = _SPACE.match(text, i).end()
            continue
        if ch == '"':
            value, end = _string(text, i)
            tokens.append(Token(Kind.STRING, value, i))
            i = end
            continue
        if ch == "$":
            m = _WORD.match(text, i + 1)
            if not m:
                raise FilterError('expected a parameter name after "$" (letters, digits and _)', i + 1)
            tokens.append(Token(Kind.PARAM, m.group(), i))
            i = m.end()
            continue
        m = _WORD.match(text, i)
        if m:
            tokens.append(Token(Kind.WORD, m.group(), i))
            i = m.end()
            continue
        m = _NUMBER.match(text, i)
        if m:
            tokens.append(Token(Kind.NUMBER, m.group(), i))
            i = m.end()
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op:
            tokens.append(Token(Kind.OP, "!=" if op == "<>" else op, i))
            i += len(op)
            continue
        if ch in _PUNCT:
            tokens.append(Token(_PUNCT[ch], ch, i))
            i += 1
            continue
        hint = " (string values take double quotes)" if ch in "'\u201c\u201d" else ""
        raise FilterError(f"unexpected character {quoted(ch)}{hint}", i + 1)
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    """The value of the double-quoted string at `start` and the offset just past its closing quote."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterError("unterminated string: no closing double quote", start + 1)
