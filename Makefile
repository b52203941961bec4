# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test deps test-deps lint bench

# The compiled import fast path, rebuilt when its source changes (an editable install does not).
FASTADI := hamsrv/ingest/_fastadi$(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

run: deps $(FASTADI)
	$(PYTHON) -m hamsrv.cli serve

test: test-deps $(FASTADI) lint
	$(PYTHON) -m pytest -q

deps:
	@$(PYTHON) -c "import hamsrv.ingest._fastadi, trio, hypercorn, psycopg, pgserver" 2>/dev/null && \
	  $(PYTHON) -m pip show hamsrv >/dev/null 2>&1 || $(PYTHON) -m pip install -q -e .

test-deps:
	@PYTHON=$(PYTHON) scripts/install-test-deps

$(FASTADI): hamsrv/ingest/_fastadi.c setup.py
	$(PYTHON) setup.py -q build_ext --inplace

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m mypy hamsrv relay

bench:
	$(PYTHON) -m bench.firehose --matrix quick
