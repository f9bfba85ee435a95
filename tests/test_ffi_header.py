"""The cffi binding (pylane._lane_core) is the C headers, nothing more or less.

pylane/_build_ffi.py hands cffi the headers' own "cffi:begin" ... "cffi:end"
sections. This test reads every header in c_core/ whole, with a parser of its
own, and checks that each public name it declares (LC_* constants, lc_*
structs and functions) is what ``ffi`` and ``lib`` see: same values, same
fields and field types in the same order, same function types. So a constant
added to a header outside the section (or to a header the build does not
read) fails here, as would a hand-typed binding that drifted.

Two deliberate differences are checked too: the blocking functions are not in
the binding (cffi's wrappers keep the GIL, so a blocking call would stall
every Python thread) and the pylane_* wrappers that release the GIL stand in
for them.
"""

from __future__ import annotations

import re
from pathlib import Path

from pylane._lane_core import ffi, lib

C_CORE = Path(__file__).resolve().parent.parent / "c_core"

# Blocking C functions kept out of the binding, and the GIL-releasing
# wrapper (same C type) that Python calls instead, if it needs one.
HIDDEN = {
    "lc_wait_next": "pylane_wait_next",
    "lc_settle_and_wait": "pylane_settle_and_wait",
    "lc_wait_idle": "pylane_wait_idle",
    "lc_complete_and_wait": None,
    "lc_wait_ready": None,  # used inside pylane_wait_next / pylane_settle_and_wait
    "lc_wait_ready_search": None,  # likewise (what they use)
}

# Kept out although it does not block: only the wrapper that began a search
# (lc_wait_ready_search) may end it, or the engine's count of searchers drifts.
WRAPPER_ONLY = {"lc_take_searched"}

# Not the engine's: a thread blocked on a result sleeps on its own
# semaphore, which the worker posts (pylane/_runtime/future.py).
RESULT_WAITER = {"pylane_waiter_new", "pylane_waiter_free", "pylane_waiter_wait",
                 "pylane_waiter_post", "pylane_settle_wake_and_wait"}

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_PREPROCESSOR = re.compile(r"^[ \t]*#.*$", re.MULTILINE)
_ENUM = re.compile(r"\benum\s*\w*\s*\{([^}]*)\}")
_STRUCT = re.compile(r"\btypedef\s+struct\s+(\w+)\s*\{([^}]*)\}\s*(\w+)\s*;")
_OPAQUE = re.compile(r"\btypedef\s+struct\s+(\w+)\s+(\w+)\s*;")
_FUNCTION = re.compile(r"([A-Za-z_][\w\s*]*?)\b(\w+)\s*\(([^()]*)\)\s*;")


def header_text() -> str:
    """Every header of c_core/, comments and preprocessor lines removed."""
    parts = [path.read_text(encoding="utf-8") for path in sorted(C_CORE.glob("*.h"))]
    return _PREPROCESSOR.sub("", _COMMENT.sub(" ", "\n".join(parts)))


def declared(text: str) -> dict:
    """The public names the header text declares."""
    constants = {}
    for body in _ENUM.findall(text):
        value = -1
        for item in filter(None, (part.strip() for part in body.split(","))):
            name, _, expr = (s.strip() for s in item.partition("="))
            value = int(expr, 0) if expr else value + 1
            if name.startswith("LC_"):
                constants[name] = value
    structs = {}
    for tag, body, name in _STRUCT.findall(text):
        if not name.startswith("lc_"):
            continue
        assert tag == name, f"typedef struct {tag} ... {name}: the binding expects one name"
        fields = []
        for decl in filter(None, (part.strip() for part in body.split(";"))):
            match = re.fullmatch(r"(.+?)\s*\b(\w+)\s*(\[\w*\])?", decl, re.DOTALL)
            assert match, f"cannot read field {decl!r} of {name}"
            ctype = " ".join(match.group(1).split()) + (match.group(3) or "")
            fields.append((match.group(2), ctype))
        structs[name] = fields
    opaque = {name for tag, name in _OPAQUE.findall(text) if name.startswith("lc_")}
    functions = {}
    for ret, name, params in _FUNCTION.findall(text):
        if name.startswith("lc_"):
            functions[name] = (" ".join(ret.split()), " ".join(params.split()))
    return {"constants": constants, "structs": structs, "opaque": opaque, "functions": functions}


def _ctype(ret: str, params: str):
    return ffi.typeof(f"{ret}(*)({params})")


def drift(names: dict) -> list[str]:
    """Every difference between the declared names and the binding."""
    problems = []
    for name, value in names["constants"].items():
        if not hasattr(lib, name):
            problems.append(f"constant {name} is not in the binding")
        elif getattr(lib, name) != value:
            problems.append(f"constant {name}: header {value}, binding {getattr(lib, name)}")
    for name, fields in names["structs"].items():
        try:
            seen = ffi.typeof(name).fields
        except ffi.error:
            problems.append(f"struct {name} is not in the binding")
            continue
        want = [(field, ffi.typeof(ctype)) for field, ctype in fields]
        got = [(field, cfield.type) for field, cfield in seen]
        if want != got:
            problems.append(f"struct {name}: header fields {want}, binding {got}")
    for name in names["opaque"] - set(names["structs"]):
        try:
            ffi.typeof(f"{name} *")
        except ffi.error:
            problems.append(f"type {name} is not in the binding")
    for name, (ret, params) in names["functions"].items():
        if name in HIDDEN or name in WRAPPER_ONLY:
            if hasattr(lib, name):
                problems.append(f"wrapper-only function {name} is exposed")
            continue
        if not hasattr(lib, name):
            problems.append(f"function {name} is not in the binding")
        elif ffi.typeof(ffi.addressof(lib, name)) is not _ctype(ret, params):
            problems.append(f"function {name}: header ({params}), binding differs")
    for name in dir(lib):
        if name.startswith("LC_") and name not in names["constants"]:
            problems.append(f"constant {name} is in the binding but in no header")
        if name.startswith("lc_") and name not in names["functions"]:
            problems.append(f"function {name} is in the binding but in no header")
    typedefs = set(ffi.list_types()[0])
    for name in sorted(typedefs - set(names["structs"]) - names["opaque"] - {"pylane_waiter"}):
        problems.append(f"type {name} is in the binding but in no header")
    return problems


def test_binding_matches_headers():
    names = declared(header_text())
    # The parser found the API at all (an empty parse would pass vacuously).
    assert {"LC_OK", "LC_ERR_NOT_ACTIVE", "LC_SAMPLE_RUN"} <= set(names["constants"])
    assert {"lc_dispatch", "lc_lane_stats", "lc_sample_run"} <= set(names["structs"])
    assert {"lc_engine", "lc_buckets"} <= names["opaque"]
    assert {"lc_submit", "lc_take_samples", "lc_buckets_take"} <= set(names["functions"])
    assert drift(names) == []


def test_blocking_functions_only_through_gil_releasing_wrappers():
    functions = declared(header_text())["functions"]
    # A call that takes a timeout can block: it must not run with the GIL held.
    waits = {name for name, (_, params) in functions.items() if "timeout_ns" in params}
    assert waits == set(HIDDEN)
    for name in WRAPPER_ONLY:
        assert name in functions and not hasattr(lib, name)
    for name, wrapper in HIDDEN.items():
        assert not hasattr(lib, name)
        if wrapper:
            assert ffi.typeof(ffi.addressof(lib, wrapper)) is _ctype(*functions[name])
    wrappers = {name for name in dir(lib) if name.startswith("pylane_")}
    assert wrappers == {w for w in HIDDEN.values() if w} | RESULT_WAITER


def test_drift_is_caught():
    """The check is not vacuous: header changes the binding lacks show up."""
    extra = """
    enum { LC_ADDED_LATER = 7 };
    typedef struct lc_dispatch { uint32_t lane; uint64_t ticket; } lc_dispatch;
    int lc_added_later(lc_engine *engine);
    uint32_t lc_lane_count(lc_engine *engine, uint32_t extra);
    """
    problems = drift(declared(header_text() + extra))
    assert any("LC_ADDED_LATER" in p for p in problems)
    assert any("struct lc_dispatch" in p for p in problems)
    assert any("lc_added_later" in p for p in problems)
    assert any("lc_lane_count" in p for p in problems)
    moved = declared(header_text() + "enum { LC_RUN_INLINE = 9 };")
    assert any("LC_RUN_INLINE" in p for p in drift(moved))
