"""The formula language: a small, safe expression language compiled to closures over Decimal.

Grammar (lowest precedence first)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | primary
    primary  := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Functions: `min(a, b, ...)`, `max(a, b, ...)`, `abs(a)`, `if(condition, then, else)`. A name is
an input, a parameter, a factor-table reference (its row is picked by the record's date and region
at evaluation time) or an earlier step. There is no attribute access, no indexing and no Python
`eval`: the text is tokenised and parsed here, checked once (units with Pint, names, totality) and
turned into nested closures, so a calculation only runs Decimal arithmetic.

Totality is checked with a sign analysis: every input's declared bounds give the signs it can take,
and a division whose divisor may be zero for some admissible input is a load error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tanhui.methodology.units import DIMENSIONLESS, Unit, compatible, factor, show

Env = dict[str, Any]
Fn = Callable[[Env], Any]
Signs = frozenset[int]

NEG: Signs = frozenset({-1})
ZERO: Signs = frozenset({0})
POS: Signs = frozenset({1})
ANY: Signs = frozenset({-1, 0, 1})

FUNCTIONS = {"min", "max", "abs", "if"}
KEYWORDS = {"and", "or", "not"}


class ExprError(Exception):
    """A formula error with the 1-based column where it was noticed."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/(),<>]))"
)


@dataclass(slots=True)
class Token:
    kind: str  # "num" | "name" | "op" | "end"
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    length = len(text)
    while pos < length:
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            col = pos + (len(text[pos:]) - len(text[pos:].lstrip())) + 1
            raise ExprError(f"unexpected character {text[col - 1]!r}", col)
        kind = m.lastgroup or "op"
        tokens.append(Token(kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    tokens.append(Token("end", "", length + 1))
    return tokens


# ---------------------------------------------------------------- syntax tree


@dataclass(slots=True)
class Node:
    column: int


@dataclass(slots=True)
class Num(Node):
    value: Decimal
    text: str


@dataclass(slots=True)
class Name(Node):
    name: str


@dataclass(slots=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(slots=True)
class Call(Node):
    func: str
    args: list[Node]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.take()
        if tok.text != text or tok.kind == "end":
            found = "end of formula" if tok.kind == "end" else repr(tok.text)
            raise ExprError(f"expected {text!r}, found {found}", tok.column)
        return tok

    def parse(self) -> Node:
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExprError(f"unexpected {tok.text!r}", tok.column)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek().kind == "name" and self.peek().text == "or":
            tok = self.take()
            node = Binary(tok.column, "or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek().kind == "name" and self.peek().text == "and":
            tok = self.take()
            node = Binary(tok.column, "and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.peek().kind == "name" and self.peek().text == "not":
            tok = self.take()
            return Unary(tok.column, "not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        node = self.sum()
        tok = self.peek()
        if tok.kind == "op" and tok.text in {"<", "<=", ">", ">=", "==", "!="}:
            self.take()
            node = Binary(tok.column, tok.text, node, self.sum())
            nxt = self.peek()
            if nxt.kind == "op" and nxt.text in {"<", "<=", ">", ">=", "==", "!="}:
                raise ExprError("chained comparisons are not allowed; use 'and'", nxt.column)
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.peek().kind == "op" and self.peek().text in {"+", "-"}:
            tok = self.take()
            node = Binary(tok.column, tok.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in {"*", "/"}:
            tok = self.take()
            node = Binary(tok.column, tok.text, node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in {"-", "+"}:
            self.take()
            operand = self.unary()
            return operand if tok.text == "+" else Unary(tok.column, "-", operand)
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            try:
                return Num(tok.column, Decimal(tok.text), tok.text)
            except InvalidOperation:  # pragma: no cover - the regex only admits valid literals
                raise ExprError(f"bad number {tok.text!r}", tok.column) from None
        if tok.kind == "name":
            if tok.text in KEYWORDS:
                raise ExprError(f"unexpected {tok.text!r}", tok.column)
            if self.peek().text == "(" and self.peek().kind == "op":
                if tok.text not in FUNCTIONS:
                    raise ExprError(
                        f"unknown function {tok.text!r} (allowed: {', '.join(sorted(FUNCTIONS))})",
                        tok.column,
                    )
                self.take()
                args = [self.or_()]
                while self.peek().text == "," and self.peek().kind == "op":
                    self.take()
                    args.append(self.or_())
                self.expect(")")
                return Call(tok.column, tok.text, args)
            return Name(tok.column, tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        found = "end of formula" if tok.kind == "end" else repr(tok.text)
        raise ExprError(f"expected a number, a name or '(', found {found}", tok.column)


def parse(text: str) -> Node:
    return _Parser(text).parse()


def names(node: Node) -> list[str]:
    """The names a formula refers to, in order of first appearance."""
    out: list[str] = []

    def walk(n: Node) -> None:
        if isinstance(n, Name):
            if n.name not in out:
                out.append(n.name)
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)

    walk(node)
    return out


# ---------------------------------------------------------------- checking and compiling


@dataclass(slots=True)
class Symbol:
    """What the checker knows of a name: its unit (None for a condition) and its possible signs."""

    unit: Unit | None
    signs: Signs = ANY


@dataclass(slots=True)
class Compiled:
    fn: Fn
    unit: Unit | None  # None: a condition (bool)
    signs: Signs = ANY
    literal: Decimal | None = field(default=None)


def _is_zero_literal(c: Compiled) -> bool:
    return c.literal is not None and c.literal == 0


def _add_signs(a: Signs, b: Signs) -> Signs:
    out: set[int] = set()
    for x in a:
        for y in b:
            if x == 0:
                out.add(y)
            elif y == 0 or x == y:
                out.add(x)
            else:
                out.update(ANY)
    return frozenset(out)


def _mul_signs(a: Signs, b: Signs) -> Signs:
    return frozenset(x * y for x in a for y in b)


def _neg_signs(a: Signs) -> Signs:
    return frozenset(-x for x in a)


def _minmax_signs(a: Signs, b: Signs, pick: Callable[[int, int], int]) -> Signs:
    return frozenset(pick(x, y) for x in a for y in b)


def signs_of(value: Decimal) -> Signs:
    return POS if value > 0 else NEG if value < 0 else ZERO


def scale(f: Fn, k: Decimal) -> Fn:
    if k == 1:
        return f
    return lambda env: f(env) * k


def _scaled(c: Compiled, k: Decimal) -> Fn:
    return scale(c.fn, k)


def _convert(c: Compiled, to: Unit, column: int, what: str) -> Fn:
    """Bring operand `c` into unit `to` (exact Decimal factor), or fail with a unit error."""
    if c.unit is None:
        raise ExprError(f"{what}: a condition cannot be used as a number", column)
    if _is_zero_literal(c):  # a bare 0 is 0 in any unit: max(x, 0) should not need "0 g CO2e"
        return c.fn
    if not compatible(c.unit, to):
        raise ExprError(f"{what}: units do not agree ({show(c.unit)} vs {show(to)})", column)
    return _scaled(c, factor(c.unit, to))


def _number(c: Compiled, column: int, what: str) -> Unit:
    if c.unit is None:
        raise ExprError(f"{what} needs a number, not a condition", column)
    return c.unit


def _condition(c: Compiled, column: int, what: str) -> None:
    if c.unit is not None:
        raise ExprError(f"{what} needs a condition (a comparison), not a number", column)


def compile_expr(node: Node, symbols: Mapping[str, Symbol]) -> Compiled:
    """Check units, names and totality of `node`; return a closure evaluating it on an env dict."""
    if isinstance(node, Num):
        value = node.value
        return Compiled(lambda env: value, DIMENSIONLESS, signs_of(value), value)

    if isinstance(node, Name):
        sym = symbols.get(node.name)
        if sym is None:
            raise ExprError(f"unknown name {node.name!r}", node.column)
        key = node.name
        return Compiled(lambda env: env[key], sym.unit, sym.signs)

    if isinstance(node, Unary):
        inner = compile_expr(node.operand, symbols)
        f = inner.fn
        if node.op == "not":
            _condition(inner, node.column, "'not'")
            return Compiled(lambda env: not f(env), None)
        _number(inner, node.column, "'-'")
        lit = -inner.literal if inner.literal is not None else None
        return Compiled(lambda env: -f(env), inner.unit, _neg_signs(inner.signs), lit)

    if isinstance(node, Binary):
        return _compile_binary(node, symbols)

    if isinstance(node, Call):
        return _compile_call(node, symbols)

    raise ExprError("unsupported expression", node.column)  # pragma: no cover


def _compile_binary(node: Binary, symbols: Mapping[str, Symbol]) -> Compiled:
    left = compile_expr(node.left, symbols)
    right = compile_expr(node.right, symbols)
    op = node.op
    if op in {"and", "or"}:
        _condition(left, node.left.column, f"'{op}'")
        _condition(right, node.right.column, f"'{op}'")
        lf, rf = left.fn, right.fn
        if op == "and":
            return Compiled(lambda env: lf(env) and rf(env), None)
        return Compiled(lambda env: lf(env) or rf(env), None)

    if op in {"+", "-", "<", "<=", ">", ">=", "==", "!="}:
        lu = _number(left, node.column, f"'{op}'")
        ru = _number(right, node.column, f"'{op}'")
        # The result takes the unit of the operand that is not a bare 0.
        unit = ru if _is_zero_literal(left) else lu
        lf = _convert(left, unit, node.column, f"'{op}'")
        rf = _convert(right, unit, node.column, f"'{op}'")
        del ru
        if op == "+":
            return Compiled(_add(lf, rf), unit, _add_signs(left.signs, right.signs))
        if op == "-":
            return Compiled(_sub(lf, rf), unit, _add_signs(left.signs, _neg_signs(right.signs)))
        return Compiled(_compare(op, lf, rf), None)

    lu = _number(left, node.column, f"'{op}'")
    ru = _number(right, node.column, f"'{op}'")
    if op == "*":
        unit = lu * ru
        return Compiled(_mul(left, right), unit, _mul_signs(left.signs, right.signs))
    # op == "/": totality demands that no admissible input makes the divisor zero.
    if 0 in right.signs:
        raise ExprError(
            "division by a value that may be zero for some admissible input "
            "(bound the input, e.g. gt = 0, or guard with max())",
            node.column,
        )
    unit = lu / ru
    lf, rf = left.fn, right.fn
    return Compiled(lambda env: lf(env) / rf(env), unit, _mul_signs(left.signs, right.signs))


def _add(lf: Fn, rf: Fn) -> Fn:
    return lambda env: lf(env) + rf(env)


def _sub(lf: Fn, rf: Fn) -> Fn:
    return lambda env: lf(env) - rf(env)


def _mul(left: Compiled, right: Compiled) -> Fn:
    # Specialise the commonest shapes (factor x input, literal x name) to save a call per product.
    lf, rf = left.fn, right.fn
    if right.literal is not None:
        k = right.literal
        return lambda env: lf(env) * k
    if left.literal is not None:
        k = left.literal
        return lambda env: k * rf(env)
    return lambda env: lf(env) * rf(env)


def _compare(op: str, lf: Fn, rf: Fn) -> Fn:
    if op == "<":
        return lambda env: lf(env) < rf(env)
    if op == "<=":
        return lambda env: lf(env) <= rf(env)
    if op == ">":
        return lambda env: lf(env) > rf(env)
    if op == ">=":
        return lambda env: lf(env) >= rf(env)
    if op == "==":
        return lambda env: lf(env) == rf(env)
    return lambda env: lf(env) != rf(env)


def _compile_call(node: Call, symbols: Mapping[str, Symbol]) -> Compiled:
    args = [compile_expr(a, symbols) for a in node.args]
    func = node.func
    if func == "if":
        if len(args) != 3:
            raise ExprError("if(condition, then, else) takes exactly 3 arguments", node.column)
        cond, then, other = args
        _condition(cond, node.args[0].column, "if()")
        if then.unit is None and other.unit is None:
            cf, tf, of = cond.fn, then.fn, other.fn
            return Compiled(lambda env: tf(env) if cf(env) else of(env), None)
        unit = other.unit if _is_zero_literal(then) and other.unit is not None else then.unit
        if unit is None:
            raise ExprError("if(): both branches must be numbers or both conditions", node.column)
        cf = cond.fn
        tf = _convert(then, unit, node.args[1].column, "if()")
        of = _convert(other, unit, node.args[2].column, "if()")
        return Compiled(lambda env: tf(env) if cf(env) else of(env), unit, then.signs | other.signs)

    if func == "abs":
        if len(args) != 1:
            raise ExprError("abs() takes exactly 1 argument", node.column)
        unit = _number(args[0], node.column, "abs()")
        f = args[0].fn
        s = frozenset(abs(x) for x in args[0].signs)
        return Compiled(lambda env: abs(f(env)), unit, s)

    # min / max
    if len(args) < 2:
        raise ExprError(f"{func}() takes at least 2 arguments", node.column)
    base = next((a for a in args if not _is_zero_literal(a)), args[0])
    unit = _number(base, node.column, f"{func}()")
    fns = [
        _convert(a, unit, a_node.column, f"{func}()")
        for a, a_node in zip(args, node.args, strict=True)
    ]
    pick = min if func == "min" else max
    signs = args[0].signs
    for a in args[1:]:
        signs = _minmax_signs(signs, a.signs, pick)
    if len(fns) == 2:
        f0, f1 = fns
        if func == "min":
            return Compiled(lambda env: _min2(f0(env), f1(env)), unit, signs)
        return Compiled(lambda env: _max2(f0(env), f1(env)), unit, signs)
    if func == "min":
        return Compiled(lambda env: min(f(env) for f in fns), unit, signs)
    return Compiled(lambda env: max(f(env) for f in fns), unit, signs)


def _min2(a: Decimal, b: Decimal) -> Decimal:
    return a if a <= b else b


def _max2(a: Decimal, b: Decimal) -> Decimal:
    return a if a >= b else b
