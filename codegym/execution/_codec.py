"""Plain-data wire format between the untrusted child and the trusted side.

Values travel as JSON in which every JSON array is a tagged container, so the decoder can
rebuild exactly the builtin types it allows and nothing else: never pickle, never user classes.
An ``int`` subclass is encoded as a plain ``int``; objects with no builtin counterpart are
refused on the child side and reported as unencodable.

This module is stdlib-only: the sandbox worker imports it by path, without the package.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from typing import Any

MAX_DEPTH = 64
MAX_HEX_DIGITS = 200_000
# Distinct members of one container that may share a hash. Building a set (or a dict, or the
# trusted side's ``set(result)``) of n such values costs n**2 comparisons, and a program can write
# any wire text it likes, so the decoder refuses more than this many.
MAX_SAME_HASH = 64
MAX_HASH_WORK = 4_000_000  # nodes hashed while checking one value; an honest 2 MB value needs < 1M
_SMALL_INT = 1 << 62

MAX_ITEMS = 1_000_000  # items taken from an iterator the program returns
# Argument types a call can change in place, which the caller sees (mirrored to the trusted side).
MUTABLE_TYPES = (list, dict, set, bytearray)
# Tags for containers and for the scalars JSON cannot carry exactly.
_LIST, _TUPLE, _SET, _FROZENSET, _DICT = "L", "T", "S", "F", "D"
_BYTES, _COMPLEX, _BIGINT, _FLOAT, _BYTEARRAY = "B", "C", "I", "X", "A"
# A subclass instance of a builtin (its base value inside), an iterator (its items), a range,
# and the three dict views: values Python code can return and a caller can use as such.
_SUBCLASS, _ITERATOR, _RANGE, _KEYS, _VALUES, _ITEMS = "Y", "G", "R", "K", "V", "E"
_KEYS_TYPE, _VALUES_TYPE, _ITEMS_TYPE = type({}.keys()), type({}.values()), type({}.items())


class _Program:
    """Marks a value the program made as an instance of its own subclass of a builtin: it
    compares and hashes as the builtin value (the subclass's methods never run on the trusted
    side), but ``type(x) is int`` is False, as it would be in plain Python."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, type(self).__mro__[2].__repr__(self))


def _marker(base: type) -> type:
    return type("Program" + base.__name__.capitalize(), (_Program, base), {"__slots__": ()})


_MARKERS = {base: _marker(base) for base in (int, float, complex, str, bytes, bytearray, list, tuple, set,
                                             frozenset, dict)}


class UnencodableError(ValueError):
    """The value has no plain-data form (a user class, a cycle, too deep)."""


class DecodeError(ValueError):
    """The bytes are not a well-formed value of the wire format."""


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise UnencodableError("value nested deeper than %d levels" % MAX_DEPTH)
    if value is None or value is True or value is False:
        return value
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return _encode(numpy.generic.item(value), depth + 1)  # numpy scalars as their Python values
    if numpy is not None and isinstance(value, numpy.ndarray):
        raise UnencodableError("cannot send a numpy array (== on arrays is elementwise; use .tolist())")
    kind = type(value)
    base = _BASE_OF.get(kind) or next((b for b in _BASES if isinstance(value, b)), None)
    if base is None:
        return _encode_other(value, depth)
    encoded = _encode_exact(value, base, depth)
    return encoded if kind is base else [_SUBCLASS, encoded]


def _encode_exact(value: Any, base: type, depth: int) -> Any:
    """``value`` as an instance of exactly ``base``: the builtin's own methods, never the subclass's."""
    if base is int:
        number = int.__index__(value)
        return number if -_SMALL_INT < number < _SMALL_INT else [_BIGINT, format(number, "x")]
    if base is float:
        number = float.__float__(value)
        return number if math.isfinite(number) else [_FLOAT, repr(number)]
    if base is str:
        return str.__str__(value)
    if base is bytes:
        return [_BYTES, bytes.hex(value)]
    if base is bytearray:
        return [_BYTEARRAY, bytearray.hex(value)]
    if base is complex:
        return [_COMPLEX, _encode(complex.__getattribute__(value, "real"), depth + 1),
                _encode(complex.__getattribute__(value, "imag"), depth + 1)]
    if base is list:
        return [_LIST, *(_encode(item, depth + 1) for item in list.__iter__(value))]
    if base is tuple:
        return [_TUPLE, *(_encode(item, depth + 1) for item in tuple.__iter__(value))]
    if base is frozenset:
        return [_FROZENSET, *(_encode(item, depth + 1) for item in frozenset.__iter__(value))]
    if base is set:
        return [_SET, *(_encode(item, depth + 1) for item in set.__iter__(value))]
    return [_DICT, *([_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in dict.items(value))]


def _encode_other(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is range:
        return [_RANGE, _encode(value.start, depth + 1), _encode(value.stop, depth + 1), _encode(value.step, depth + 1)]
    if kind in (_KEYS_TYPE, _VALUES_TYPE):
        return [_KEYS if kind is _KEYS_TYPE else _VALUES, *(_encode(item, depth + 1) for item in value)]
    if kind is _ITEMS_TYPE:
        return [_ITEMS, *([_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value)]
    if hasattr(kind, "__next__") and hasattr(kind, "__iter__"):  # generators, map, zip, iterators
        items = []
        for item in value:  # the program's own code runs here, in the child
            items.append(_encode(item, depth + 1))
            if len(items) > MAX_ITEMS:
                raise UnencodableError("iterator longer than %d items" % MAX_ITEMS)
        return [_ITERATOR, *items]
    raise UnencodableError("cannot send a %s value" % kind.__name__)


_BASES = (int, float, complex, str, bytes, bytearray, list, tuple, frozenset, set, dict)
_BASE_OF = {base: base for base in _BASES}


def encode(value: Any) -> Any:
    """Return the JSON-ready tagged form of ``value`` (raises UnencodableError)."""
    try:
        return _encode(value, 0)
    except RecursionError as err:
        raise UnencodableError("value nested too deeply") from err


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=True)


def _decode(node: Any, depth: int, state: _State) -> Any:
    state.nodes += 1
    if depth > MAX_DEPTH:
        raise DecodeError("value nested deeper than %d levels" % MAX_DEPTH)
    kind = type(node)
    if node is None or kind is bool or kind is str:
        return node
    if kind is int:
        return node
    if kind is float:
        return node
    if kind is not list or not node or type(node[0]) is not str:
        raise DecodeError("unexpected %s in wire data" % kind.__name__)
    tag, items = node[0], node[1:]
    if tag == _LIST:
        members = [_decode(item, depth + 1, state) for item in items]
        _bound_collisions(members, state)
        return members
    if tag == _TUPLE:
        start = state.nodes
        members = [_decode(item, depth + 1, state) for item in items]
        _bound_collisions(members, state)
        value = tuple(members)
        if state.nodes - start > MAX_SAME_HASH:
            state.sizes[id(value)] = state.nodes - start
        return value
    if tag in (_SET, _FROZENSET):
        start = state.nodes
        members = [_decode(item, depth + 1, state) for item in items]
        _bound_collisions(members, state)
        try:
            if tag == _SET:
                return set(members)
            value = frozenset(members)
            if state.nodes - start > MAX_SAME_HASH:
                state.sizes[id(value)] = state.nodes - start
            return value
        except TypeError as err:
            raise DecodeError("unhashable set member") from err
    if tag == _DICT:
        for pair in items:
            if type(pair) is not list or len(pair) != 2:
                raise DecodeError("malformed dict entry")
        keys = [_decode(pair[0], depth + 1, state) for pair in items]
        _bound_collisions(keys, state)
        result = {}
        for key, pair in zip(keys, items):
            try:
                result[key] = _decode(pair[1], depth + 1, state)
            except TypeError as err:
                raise DecodeError("unhashable dict key") from err
        return result
    if tag in (_BYTES, _BYTEARRAY) and len(items) == 1 and type(items[0]) is str:
        return bytes.fromhex(items[0]) if tag == _BYTES else bytearray.fromhex(items[0])
    if tag == _SUBCLASS and len(items) == 1:
        inner = _decode(items[0], depth + 1, state)
        marker = _MARKERS.get(type(inner))
        if marker is None:
            raise DecodeError("no subclass marker for %s" % type(inner).__name__)
        value = marker(inner)
        if id(inner) in state.sizes:  # the stand-in hashes like the value it wraps
            state.sizes[id(value)] = state.sizes.pop(id(inner))
        return value
    if tag == _ITERATOR:
        members = [_decode(item, depth + 1, state) for item in items]
        return iter(members)
    if tag == _RANGE and len(items) == 3:
        bounds = [_decode(item, depth + 1, state) for item in items]
        if any(type(b) is not int for b in bounds) or bounds[2] == 0:
            raise DecodeError("malformed range")
        value = range(*bounds)
        if len(value) > MAX_ITEMS:  # costs nothing on the wire, but sum() or set() of it would
            raise DecodeError("range longer than %d items" % MAX_ITEMS)
        return value
    if tag in (_KEYS, _VALUES):
        members = [_decode(item, depth + 1, state) for item in items]
        if tag == _VALUES:
            return dict(enumerate(members)).values()
        _bound_collisions(members, state)
        try:
            return dict.fromkeys(members).keys()
        except TypeError as err:
            raise DecodeError("unhashable dict key") from err
    if tag == _ITEMS:
        if any(type(pair) is not list or len(pair) != 2 for pair in items):
            raise DecodeError("malformed dict entry")
        keys = [_decode(pair[0], depth + 1, state) for pair in items]
        _bound_collisions(keys, state)
        try:
            return dict(zip(keys, (_decode(pair[1], depth + 1, state) for pair in items))).items()
        except TypeError as err:
            raise DecodeError("unhashable dict key") from err
    if tag == _BIGINT and len(items) == 1 and type(items[0]) is str:
        digits = items[0]
        if len(digits) > MAX_HEX_DIGITS:
            raise DecodeError("integer too large")
        return int(digits, 16)
    if tag == _FLOAT and len(items) == 1 and items[0] in ("nan", "inf", "-inf"):
        return float(items[0])
    if tag == _COMPLEX and len(items) == 2:
        real, imag = (_decode(part, depth + 1, state) for part in items)
        if type(real) is not float or type(imag) is not float:
            raise DecodeError("malformed complex")
        return complex(real, imag)
    raise DecodeError("unknown tag %r" % tag)


def _hash_or_none(value: Any) -> int | None:
    if type(value) in (str, bytes):
        return None  # randomized hashes: no chosen collisions
    try:
        return hash(value)
    except TypeError:
        return None  # unhashable members never meet in a hash table


def _bound_collisions(members: list, state: _State) -> None:
    """Refuse a container holding more than MAX_SAME_HASH distinct hashable values with one hash,
    or whose hashing would exceed the value's hashing budget. Linear: only oversized hash groups
    are examined, a value against at most MAX_SAME_HASH representatives."""
    if len(members) <= MAX_SAME_HASH:
        return
    state.hash_work -= sum(state.sizes.get(id(m), 1) for m in members) if state.sizes else len(members)
    if state.hash_work < 0:
        raise DecodeError("value too costly to hash (large tuples nested in large containers)")
    hashes = list(map(_hash_or_none, members))
    counts = Counter(hashes)
    counts.pop(None, None)
    if not counts or max(counts.values()) <= MAX_SAME_HASH:
        return
    for crowded in [h for h, n in counts.items() if n > MAX_SAME_HASH]:
        distinct: list = []
        for value in [v for v, h in zip(members, hashes) if h == crowded]:
            for seen in distinct:
                if value == seen:
                    break
            else:
                distinct.append(value)
                if len(distinct) > MAX_SAME_HASH:
                    raise DecodeError("more than %d distinct values share one hash" % MAX_SAME_HASH)


class _State:
    """Per-decode bookkeeping: how much hashing is left, and the node count of each decoded tuple
    (Python does not cache tuple hashes, so hashing nested tuples level by level costs their size
    at every level)."""

    def __init__(self) -> None:
        self.hash_work = MAX_HASH_WORK
        self.nodes = 0
        self.sizes: dict[int, int] = {}  # node counts of the large tuples and frozensets


def from_wire(node: Any) -> Any:
    """Rebuild a value from already-parsed wire JSON, allowing builtin types only."""
    try:
        return _decode(node, 0, _State())
    except (RecursionError, ValueError) as err:
        if isinstance(err, DecodeError):
            raise
        raise DecodeError(str(err)) from err


def _reject_constant(name: str) -> float:
    raise DecodeError("bare %s is not allowed in wire data" % name)


def parse_line(line: bytes | str) -> Any:
    """Parse one JSON line strictly: no bare NaN/Infinity, big numbers refused."""
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except (RecursionError, ValueError) as err:
        if isinstance(err, DecodeError):
            raise
        raise DecodeError(str(err)[:200]) from err


def loads(text: bytes | str) -> Any:
    return from_wire(parse_line(text))
