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
from typing import Any

MAX_DEPTH = 64
MAX_HEX_DIGITS = 200_000
# Distinct members of one container that may share a hash. Building a set (or a dict, or the
# trusted side's ``set(result)``) of n such values costs n**2 comparisons, and a program can write
# any wire text it likes, so the decoder refuses more than this many.
MAX_SAME_HASH = 64
_SMALL_INT = 1 << 62

# Tags for containers and for the scalars JSON cannot carry exactly.
_LIST, _TUPLE, _SET, _FROZENSET, _DICT = "L", "T", "S", "F", "D"
_BYTES, _COMPLEX, _BIGINT, _FLOAT = "B", "C", "I", "X"


class UnencodableError(ValueError):
    """The value has no plain-data form (a user class, a cycle, too deep)."""


class DecodeError(ValueError):
    """The bytes are not a well-formed value of the wire format."""


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise UnencodableError("value nested deeper than %d levels" % MAX_DEPTH)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):  # a bool subclass cannot exist, but numpy.bool_ duck-types
        return bool(value)
    if isinstance(value, int):
        number = int.__index__(value)
        if -_SMALL_INT < number < _SMALL_INT:
            return number
        return [_BIGINT, format(number, "x")]
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else [_FLOAT, repr(number)]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return [_BYTES, bytes(value).hex()]
    if isinstance(value, complex):
        return [_COMPLEX, _encode(value.real, depth + 1), _encode(value.imag, depth + 1)]
    if isinstance(value, list):
        return [_LIST, *(_encode(item, depth + 1) for item in list.__iter__(value))]
    if isinstance(value, tuple):
        return [_TUPLE, *(_encode(item, depth + 1) for item in tuple.__iter__(value))]
    if isinstance(value, frozenset):
        return [_FROZENSET, *(_encode(item, depth + 1) for item in frozenset.__iter__(value))]
    if isinstance(value, set):
        return [_SET, *(_encode(item, depth + 1) for item in set.__iter__(value))]
    if isinstance(value, dict):
        return [_DICT, *([_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in dict.items(value))]
    tolist = getattr(type(value), "tolist", None)
    if tolist is not None and type(value).__module__.startswith("numpy"):
        return _encode(tolist(value), depth + 1)
    raise UnencodableError("cannot send a %s value" % type(value).__name__)


def encode(value: Any) -> Any:
    """Return the JSON-ready tagged form of ``value`` (raises UnencodableError)."""
    try:
        return _encode(value, 0)
    except RecursionError as err:
        raise UnencodableError("value nested too deeply") from err


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=True)


def _decode(node: Any, depth: int) -> Any:
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
        members = [_decode(item, depth + 1) for item in items]
        _bound_collisions(members)
        return members
    if tag == _TUPLE:
        members = [_decode(item, depth + 1) for item in items]
        _bound_collisions(members)
        return tuple(members)
    if tag in (_SET, _FROZENSET):
        members = [_decode(item, depth + 1) for item in items]
        _bound_collisions(members)
        try:
            return set(members) if tag == _SET else frozenset(members)
        except TypeError as err:
            raise DecodeError("unhashable set member") from err
    if tag == _DICT:
        for pair in items:
            if type(pair) is not list or len(pair) != 2:
                raise DecodeError("malformed dict entry")
        keys = [_decode(pair[0], depth + 1) for pair in items]
        _bound_collisions(keys)
        result = {}
        for key, pair in zip(keys, items):
            try:
                result[key] = _decode(pair[1], depth + 1)
            except TypeError as err:
                raise DecodeError("unhashable dict key") from err
        return result
    if tag == _BYTES and len(items) == 1 and type(items[0]) is str:
        return bytes.fromhex(items[0])
    if tag == _BIGINT and len(items) == 1 and type(items[0]) is str:
        digits = items[0]
        if len(digits) > MAX_HEX_DIGITS:
            raise DecodeError("integer too large")
        return int(digits, 16)
    if tag == _FLOAT and len(items) == 1 and items[0] in ("nan", "inf", "-inf"):
        return float(items[0])
    if tag == _COMPLEX and len(items) == 2:
        real, imag = (_decode(part, depth + 1) for part in items)
        if type(real) is not float or type(imag) is not float:
            raise DecodeError("malformed complex")
        return complex(real, imag)
    raise DecodeError("unknown tag %r" % tag)


def _bound_collisions(members: list) -> None:
    """Refuse a container holding more than MAX_SAME_HASH distinct hashable values with one hash.
    Linear: a value is compared with at most MAX_SAME_HASH representatives of its hash group."""
    if len(members) <= MAX_SAME_HASH:
        return
    groups: dict[int, list[int]] = {}
    for index, value in enumerate(members):
        if type(value) in (str, bytes):
            continue  # randomized hashes: no chosen collisions
        try:
            groups.setdefault(hash(value), []).append(index)
        except TypeError:
            continue  # unhashable members never meet in a hash table
    for indexes in groups.values():
        if len(indexes) <= MAX_SAME_HASH:
            continue
        distinct: list = []
        for index in indexes:
            value = members[index]
            if not any(value == seen for seen in distinct):
                distinct.append(value)
                if len(distinct) > MAX_SAME_HASH:
                    raise DecodeError("more than %d distinct values share one hash" % MAX_SAME_HASH)


def from_wire(node: Any) -> Any:
    """Rebuild a value from already-parsed wire JSON, allowing builtin types only."""
    try:
        return _decode(node, 0)
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
