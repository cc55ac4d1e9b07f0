"""`loads` and `dumps` for the hook, without importing the `json` package.

The hook parses one payload per tool call, and `import json` is a large part of what it pays: the
json package compiles regular expressions at import and pulls in re, enum, functools and collections
(~7 ms a call on a slow machine, 2-3 ms on a fast one; see BENCHMARKS.md). Both `json.loads` and
`json.dumps` do their actual work in the C accelerator `_json`, which is built into CPython; calling
it directly gives the same results for the calls the hook makes (tests/test_fastjson.py holds them
equal). Where `_json` is missing or behaves differently (another Python, a changed private API), this
module falls back to the json package. Error paths also use the json package, for its exact messages.
"""

__all__ = ["loads", "dumps"]

_WHITESPACE = " \t\n\r"  # what JSON allows around a value (json.decoder.WHITESPACE)


def _type_error(o: object):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


try:
    import _json

    class _DecodeContext:
        # What json.decoder.JSONDecoder() hands the C scanner by default.
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
        memo: dict = {}

    _scan = _json.make_scanner(_DecodeContext())  # type: ignore[arg-type]  # JSONDecoder's fields, duck-typed
    _encode_str = {True: _json.encode_basestring_ascii, False: _json.encode_basestring}

    def _fast_loads(s: str | bytes):
        if not isinstance(s, str) or s.startswith("\ufeff"):
            return _slow_loads(s)
        start = len(s) - len(s.lstrip(_WHITESPACE))
        try:
            obj, end = _scan(s, start)
        except Exception:
            # No value, or invalid JSON: let json say why. (The C scanner raises json.decoder's
            # JSONDecodeError only when json.decoder is already imported; else a SystemError.)
            return _slow_loads(s)
        if end != len(s) and s[end:].strip(_WHITESPACE):
            return _slow_loads(s)  # extra data
        return obj

    def _fast_dumps(obj: object, ensure_ascii: bool = True) -> str:
        encode_str = _encode_str[bool(ensure_ascii)]
        if isinstance(obj, str):
            return encode_str(obj)
        # Same arguments as JSONEncoder.iterencode(_one_shot=True) with json.dumps' defaults; a new
        # markers dict per call, as json does (a failed call may leave entries behind).
        encoder = _json.make_encoder({}, _type_error, encode_str, None, ": ", ", ", False, False, True)
        return "".join(encoder(obj, 0))

    # Refuse the fast path unless it agrees with json on a sample of every kind of value.
    _SAMPLE = '{"a": [1, -2.5, 1e+100, "\\u00e9\\n\\"", null, true, false, {}, []], "\\u2603": {"k": "v"}}'
    if _fast_dumps(_fast_loads(_SAMPLE)) != _SAMPLE or _fast_dumps({"é": "é"}, ensure_ascii=False) != '{"é": "é"}':
        raise ValueError("_json disagrees with json")
    loads, dumps = _fast_loads, _fast_dumps
    FAST = True
except Exception:  # no usable _json: the json package, at its usual cost
    FAST = False

    def loads(s: str | bytes):
        return _slow_loads(s)

    def dumps(obj: object, ensure_ascii: bool = True) -> str:
        import json

        return json.dumps(obj, ensure_ascii=ensure_ascii)


def _slow_loads(s: str | bytes):
    import json

    return json.loads(s)
