# The two commands of the README's quick start: `make run` and `make test`.
PYTHON ?= python3
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run test deps test-deps lint bench

run: deps
	$(PYTHON) -m hamsrv.cli serve

test: test-deps lint
	$(PYTHON) -m pytest -q

deps:
	@$(PYTHON) -c "import hamsrv, trio, hypercorn, psycopg, pgserver" 2>/dev/null && \
	  $(PYTHON) -m pip show hamsrv >/dev/null 2>&1 || $(PYTHON) -m pip install -q -e .

test-deps:
	@PYTHON=$(PYTHON) scripts/install-test-deps

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m mypy hamsrv relay

bench:
	$(PYTHON) -m bench.firehose --matrix quick
