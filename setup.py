"""Only here because setuptools reads ``cffi_modules`` from setup(); all
metadata lives in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["pylane/_build_ffi.py:ffibuilder"])
