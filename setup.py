"""The one compiled part: the bulk-import fast path (hamsrv/ingest/_fastadi.c). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("hamsrv.ingest._fastadi", ["hamsrv/ingest/_fastadi.c"],
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
