"""Test cases, and how each kind is split between the untrusted child and the trusted judge.

The untrusted child only ever computes values: the entry point's return value for a call, the
value of each program-defined call inside an assert, the stdout of a stdio run. Expected values,
assertion logic and ``check`` functions stay on the trusted side and are applied to the decoded
plain-data results.
"""

from __future__ import annotations

import ast
import builtins
import math
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from . import _codec

TestKind = Literal["call", "assert", "check", "stdio"]

# Names an assertion may use on the trusted side; any other called name is the program's own
# and its call is evaluated in the child.
_TRUSTED_CALLABLES = frozenset(
    "abs all any ascii bin bool bytearray bytes chr complex dict divmod enumerate filter float format "
    "frozenset hash hex int iter next oct "
    "isinstance issubclass len list map max min ord pow range repr reversed round set sorted str "
    "sum tuple type zip".split()
)
TRUSTED_BUILTINS = {name: getattr(builtins, name) for name in _TRUSTED_CALLABLES}
TRUSTED_MODULES = {"math": math, "sys": sys}


# CPython 3.11 can raise "SystemError: AST constructor recursion depth mismatch" when ast.parse
# runs in several threads at once (the sandbox judges in a thread pool): parse under one lock.
_AST_LOCK = threading.Lock()


def _parse(source: str, mode: str = "exec") -> ast.AST:
    with _AST_LOCK:
        return ast.parse(source, mode=mode)


class LiteralTestError(ValueError):
    """A generated test is not pure literal data."""


@dataclass(frozen=True)
class AssertPlan:
    """An assert statement split into what the child computes and a trusted predicate.

    ``calls`` are expressions the child evaluates (program calls that Python makes exactly once,
    program globals used as values); the predicate reads them as ``__r[i]``, lazily. ``proxies``
    are program functions called where Python may call them zero or many times, or with names
    bound inside the assert (``all(is_prime(p) for p in [2, 3])``, ``f(1) or f(2)``): the
    predicate calls them live, each time, as a real call would be."""

    calls: tuple[str, ...]
    predicate: Any  # a code object evaluating the assertion over ``__r`` and the proxies
    proxies: tuple[str, ...] = ()


_TRUSTED_NAMES = _TRUSTED_CALLABLES | set(TRUSTED_MODULES) | {"True", "False", "None", "__r"}


def _bound_names(tree: ast.AST) -> set[str]:
    """Names an expression binds itself: comprehension targets, lambda parameters, walrus targets."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Lambda):
            args = node.args
            bound |= {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
            bound |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        elif isinstance(node, ast.NamedExpr):
            bound.add(node.target.id)
    return bound


class _SplitAssert(ast.NodeTransformer):
    def __init__(self, bound: set[str], shadowed: frozenset[str]) -> None:
        self.bound = bound
        self.trusted_calls = _TRUSTED_CALLABLES - shadowed
        self.trusted_names = _TRUSTED_NAMES - shadowed
        self.calls: list[str] = []
        self.proxies: set[str] = set()
        self.deferred = False  # inside code Python may run zero or many times

    def _record(self, node: ast.expr) -> ast.AST:
        self.calls.append(ast.unparse(node))
        index = ast.Constant(len(self.calls) - 1)
        return ast.copy_location(ast.Subscript(ast.Name("__r", ast.Load()), index, ast.Load()), node)

    def _closed(self, node: ast.AST) -> bool:
        return not any(isinstance(n, ast.Name) and n.id in self.bound for n in ast.walk(node))

    def _program_value(self, node: ast.AST) -> bool:
        """Whether the expression's value comes from the program (it names a program global)."""
        return any(isinstance(n, ast.Name) and n.id not in self.trusted_names and n.id not in self.bound
                   for n in ast.walk(node))

    def _visit_deferred(self, node: ast.AST) -> ast.AST:
        saved, self.deferred = self.deferred, True
        try:
            return self.visit(node)
        finally:
            self.deferred = saved

    def _comprehension(self, node: ast.AST) -> ast.AST:
        # The first iterable runs once, where the comprehension stands; the rest once per item.
        first = node.generators[0]
        first.iter = self.visit(first.iter)
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                setattr(node, part, self._visit_deferred(getattr(node, part)))
        first.ifs = [self._visit_deferred(condition) for condition in first.ifs]
        node.generators[1:] = [self._visit_deferred(gen) for gen in node.generators[1:]]
        return node

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node.body = self._visit_deferred(node.body)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        node.values = [self.visit(node.values[0])] + [self._visit_deferred(v) for v in node.values[1:]]
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        node.test = self.visit(node.test)
        node.body, node.orelse = self._visit_deferred(node.body), self._visit_deferred(node.orelse)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Attribute) and self._closed(node) and self._program_value(node.func.value):
            return self._record(node)  # Solution().twice(3), K.g(): the object never has to travel
        if isinstance(node.func, ast.Name) and node.func.id not in self.trusted_calls:
            # A call Python makes exactly once is computed up front; one it may skip or repeat
            # (short-circuits, conditionals, comprehensions, lambdas) is made live, each time.
            if self._closed(node) and not self.deferred:
                return self._record(node)
            if node.func.id not in self.bound:
                self.proxies.add(node.func.id)
                node.args = [self.visit(arg) for arg in node.args]
                node.keywords = [self.visit(keyword) for keyword in node.keywords]
                return node
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id not in self.trusted_names and node.id not in self.bound:
            return self._record(node)  # a program global used as a value
        return node


def shadowed_names(program: str, tests: list) -> frozenset[str]:
    """Entry points with a builtin's name (MBPP task 126 tests a function called ``sum``) that the
    program defines at top level: in their asserts they mean the program's function, as in plain
    Python. Only a test's own entry point: a program that redefines ``set`` or ``round`` to fool
    ``assert set(f(x)) == set(y)`` still meets the real builtins. The program is parsed only when
    that can matter."""
    used = {t.fn for t in tests if t.kind == "assert" and t.fn in _TRUSTED_CALLABLES}
    candidates = {name for name in used if name in program}
    if not candidates:
        return frozenset()
    try:
        body = _parse(program).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    defined: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom)):
            defined |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return frozenset(candidates & defined)


@lru_cache(maxsize=4096)
def plan_assert(source: str, shadowed: frozenset[str] = frozenset()) -> AssertPlan:
    """Split ``assert EXPR`` (or a bare expression) into child computations and a predicate;
    ``shadowed`` names are the program's, not the builtins (see :func:`shadowed_names`)."""
    try:
        tree = _parse(source.strip())
    except SyntaxError as err:
        raise ValueError("test is not valid Python: %s" % err) from err
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Assert, ast.Expr)):
        raise ValueError("expected a single assert statement, got: %.80s" % source)
    statement = tree.body[0]
    expression = statement.test if isinstance(statement, ast.Assert) else statement.value
    if not any(isinstance(n, ast.Call) for n in ast.walk(expression)):
        raise ValueError("assert calls no function: %.80s" % source)
    splitter = _SplitAssert(_bound_names(expression), shadowed)
    rewritten = ast.fix_missing_locations(ast.Expression(splitter.visit(expression)))
    return AssertPlan(tuple(splitter.calls), compile(rewritten, "<assert>", "eval"), tuple(sorted(splitter.proxies)))


@lru_cache(maxsize=4096)
def plan_check(source: str, entry_point: str) -> tuple[tuple, ...]:
    """Candidate calls in a check whose arguments are all literals, in source order (repeats kept).

    They are evaluated ahead in the child, so a typical check needs no round trip per call. The
    judge uses them only while the check's real calls match this sequence exactly; any other call
    (computed arguments, loops, another order) makes it rerun the program and answer every call
    live, so a stateful program sees exactly the calls it would see in plain Python."""
    nodes = [node for node in ast.walk(_parse(source))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("candidate", entry_point) and not node.keywords]
    calls: list[tuple] = []
    for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset)):
        try:
            args = tuple(_constant(arg) for arg in node.args)
            call_key(args)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, _codec.UnencodableError):
            break  # later calls would run after one we cannot prefetch: keep the sequence exact
        calls.append(args)
    return tuple(calls)


_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b, ast.Div: lambda a, b: a / b}


def _constant(node: ast.AST) -> Any:
    """A literal, or arithmetic on number literals (``3 * 5 * 7``, as checks write arguments);
    anything else raises ValueError. Operands stay small, so folding is cheap."""
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _constant(node.left), _constant(node.right)
        if not all(type(v) in (int, float) and abs(v) < 1 << 64 for v in (left, right)):
            raise ValueError("not a small number")
        try:
            return _ARITHMETIC[type(node.op)](left, right)
        except ArithmeticError as err:
            raise ValueError(str(err)) from err
    return ast.literal_eval(node)


def call_key(args: tuple) -> str:
    """A type-exact identity for a call's arguments (1, 1.0 and True differ)."""
    return _codec.dumps(list(args))


def evaluate_assert(plan: AssertPlan, results: list[Any], proxies: dict[str, Any] | None = None) -> bool:
    namespace = {"__builtins__": TRUSTED_BUILTINS, "__r": results, **TRUSTED_MODULES, **(proxies or {})}
    return bool(eval(plan.predicate, namespace))


def _literal(source: str, what: str) -> Any:
    try:
        return ast.literal_eval(_parse(source.strip(), "eval"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise LiteralTestError("%s is not a literal: %.80s" % (what, source)) from err


@dataclass(frozen=True)
class TestCase:
    """One test. Build it with :meth:`call`, :meth:`from_assert`, :meth:`from_check`,
    :meth:`stdio` or :meth:`from_literals`; never construct the fields by hand."""

    kind: TestKind
    fn: str = ""
    args: tuple = ()
    expected: Any = None
    source: str = ""
    setup: str = ""
    stdin: str = ""
    expected_stdout: str = ""
    float_tol: float | None = None
    origin: str = field(default="", compare=False)

    __test__ = False  # not a pytest class

    @classmethod
    def call(cls, fn: str, args: list | tuple, expected: Any, float_tol: float | None = None,
             origin: str = "") -> TestCase:
        """``fn(*args) == expected``, with an optional float tolerance."""
        if not fn.isidentifier():
            raise ValueError("function name %r is not an identifier" % fn)
        _codec.encode(list(args))  # fail early on values that cannot travel
        _codec.encode(expected)
        return cls("call", fn=fn, args=tuple(args), expected=expected, float_tol=float_tol, origin=origin)

    @classmethod
    def from_literals(cls, fn: str, args_source: str, expected_source: str,
                      float_tol: float | None = None, origin: str = "generated") -> TestCase:
        """A generated test from literal source text; anything but literals is rejected."""
        args = _literal(args_source, "arguments")
        if not isinstance(args, (list, tuple)):
            args = (args,)
        return cls.call(fn, args, _literal(expected_source, "expected value"), float_tol, origin)

    @classmethod
    def from_assert(cls, source: str, origin: str = "", entry_point: str = "") -> TestCase:
        """A dataset assert such as MBPP's ``assert f(2, 3) == 5`` (trusted source only);
        ``entry_point`` names the function under test (needed when it shadows a builtin)."""
        plan_assert(source)
        return cls("assert", fn=entry_point, source=source.strip(), origin=origin)

    @classmethod
    def from_check(cls, check_source: str, entry_point: str, setup: str = "",
                   origin: str = "") -> TestCase:
        """A HumanEval-style ``def check(candidate)`` suite; ``setup`` is trusted helper code
        (for HumanEval, the prompt) that the check may use."""
        compile(setup + "\n" + check_source, "<check>", "exec")
        if "def check" not in check_source:
            raise ValueError("check source defines no check(candidate) function")
        return cls("check", fn=entry_point, source=check_source, setup=setup, origin=origin)

    @classmethod
    def stdio(cls, stdin: str, expected_stdout: str, origin: str = "") -> TestCase:
        """Feed ``stdin`` to the program and compare its stdout."""
        return cls("stdio", stdin=stdin, expected_stdout=expected_stdout, origin=origin)

    def describe(self, limit: int = 200) -> str:
        if self.kind == "call":
            text = "%s(%s) == %r" % (self.fn, ", ".join(map(repr, self.args)), self.expected)
        elif self.kind == "stdio":
            text = "stdin %r -> stdout %r" % (self.stdin, self.expected_stdout)
        elif self.kind == "check":
            text = "check(%s)" % self.fn
        else:
            text = self.source
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def to_dict(self) -> dict:
        """JSON-ready form (values in the plain-data wire format)."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "call":
            data.update(fn=self.fn, args=_codec.encode(list(self.args)), expected=_codec.encode(self.expected))
            if self.float_tol is not None:
                data["float_tol"] = self.float_tol
        elif self.kind == "stdio":
            data.update(stdin=self.stdin, expected_stdout=self.expected_stdout)
        elif self.kind == "check":
            data.update(fn=self.fn, source=self.source, setup=self.setup)
        else:
            data["source"] = self.source
            if self.fn:
                data["fn"] = self.fn
        if self.origin:
            data["origin"] = self.origin
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TestCase:
        kind, origin = data.get("kind"), data.get("origin", "")
        if kind == "call":
            return cls.call(data["fn"], _codec.from_wire(data["args"]), _codec.from_wire(data["expected"]),
                            data.get("float_tol"), origin)
        if kind == "stdio":
            return cls.stdio(data["stdin"], data["expected_stdout"], origin)
        if kind == "check":
            return cls.from_check(data["source"], data["fn"], data.get("setup", ""), origin)
        if kind == "assert":
            return cls.from_assert(data["source"], origin, data.get("fn", ""))
        raise ValueError("unknown test kind %r" % kind)
