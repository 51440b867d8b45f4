# casvault: the two set-up commands are `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test

export CASVAULT_ROOT ?= ./data
# gunicorn's address (read by ops/gunicorn.conf.py)
export CASVAULT_BIND ?= 127.0.0.1:8000

.PHONY: serve test bench soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(TESTSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP) $@

serve: $(STAMP)
	CASVAULT_DEV=$${CASVAULT_DEV-1} $(VENV)/bin/gunicorn -c ops/gunicorn.conf.py 'web:create_app()'

test: $(TESTSTAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(TESTSTAMP)
	$(PY) tests/bench/run.py --out $${BENCH_OUT:-bench-results.json}

soak: $(TESTSTAMP)
	CASVAULT_SOAK=1 $(PY) -m pytest -q -m slow tests/

clean:
	rm -rf $(VENV) .pytest_cache
