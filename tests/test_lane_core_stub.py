"""pylane/_lane_core.pyi (the types mypy sees for the cffi extension) says
what the compiled module has: the same constants and functions in ``lib``,
each function with as many parameters as its C type and a result of the
matching Python kind. So a function added to a header (the binding follows
the headers, see test_ffi_header.py) fails here until the stub has it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from pylane._lane_core import ffi, lib

STUB = Path(__file__).resolve().parent.parent / "pylane" / "_lane_core.pyi"


def _stub_class(name: str) -> ast.ClassDef:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"no class {name} in {STUB}")


def _stub_lib() -> tuple[dict[str, str], dict[str, ast.FunctionDef]]:
    """(constant -> annotation, function name -> definition) of ``_Lib``."""
    constants: dict[str, str] = {}
    functions: dict[str, ast.FunctionDef] = {}
    for node in _stub_class("_Lib").body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            constants[node.target.id] = ast.unparse(node.annotation)
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
    return constants, functions


def _python_kind(ctype: Any) -> str:
    """The stub's annotation for a C type: how cffi hands it to Python."""
    if ctype.kind == "void":
        return "None"
    if ctype.kind == "primitive":
        return "float" if ctype.cname in ("float", "double") else "int"
    return "_CData"  # pointers, arrays, structs


def test_lib_names_are_the_modules():
    constants, functions = _stub_lib()
    assert set(constants) | set(functions) == {n for n in dir(lib) if not n.startswith("_")}


def test_constants_are_ints():
    constants, _ = _stub_lib()
    for name, annotation in constants.items():
        assert annotation == "int", name
        assert type(getattr(lib, name)) is int, name


def test_functions_match_their_c_types():
    _, functions = _stub_lib()
    for name, node in functions.items():
        ctype = ffi.typeof(getattr(lib, name))
        # self, then the C parameters: all positional-only, as cffi's are.
        assert not node.args.args, f"{name}: '/' goes after the C parameters"
        params = [arg.annotation for arg in node.args.posonlyargs[1:]]
        assert len(params) == len(ctype.args), f"{name}: {len(params)} parameters, C has {ctype}"
        for position, (annotation, arg) in enumerate(zip(params, ctype.args)):
            assert annotation is not None, f"{name}: parameter {position} unannotated"
            assert ast.unparse(annotation) == _python_kind(arg), f"{name}: parameter {position}"
        assert node.returns is not None, name
        assert ast.unparse(node.returns) == _python_kind(ctype.result), f"{name}: result"


def test_ffi_members_exist():
    for node in _stub_class("_FFI").body:
        if isinstance(node, (ast.AnnAssign, ast.FunctionDef)):
            name = node.target.id if isinstance(node, ast.AnnAssign) else node.name
            assert hasattr(ffi, name), name
