# The two commands of the README's quick start: `make run` and `make test`.
# They use the active virtual environment, or else create and use the project's own `.venv` (so they
# also work where the system Python is "externally managed", as on Debian 12+ and Ubuntu 24.04).
ifdef VIRTUAL_ENV
PYTHON ?= python
VENV_PYTHON :=
else
PYTHON ?= .venv/bin/python
VENV_PYTHON := .venv/bin/python
endif
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test deps test-deps lint bench

# The compiled import fast path, rebuilt when its source changes (an editable install does not).
FASTADI := hamsrv/ingest/_fastadi$(shell python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

run: $(VENV_PYTHON) deps $(FASTADI)
	$(PYTHON) -m hamsrv.cli serve

test: $(VENV_PYTHON) test-deps $(FASTADI) lint
	$(PYTHON) -m pytest -q

deps:
	@$(PYTHON) -c "import hamsrv.ingest._fastadi, trio, hypercorn, psycopg, pgserver" 2>/dev/null && \
	  $(PYTHON) -m pip show hamsrv >/dev/null 2>&1 || $(PYTHON) -m pip install -q -e .

test-deps:
	@PYTHON=$(PYTHON) scripts/install-test-deps

.venv/bin/python:
	python3 -m venv .venv && .venv/bin/python -m pip install -q setuptools

$(FASTADI): hamsrv/ingest/_fastadi.c setup.py
	$(PYTHON) setup.py -q build_ext --inplace

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m mypy hamsrv relay

bench:
	$(PYTHON) -m bench.firehose --matrix quick
