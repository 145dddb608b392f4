# arena-seg: the README's two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test test-fast lint bench clean

$(STAMP): requirements.txt requirements-dev.txt requirements-bench.txt pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the pinned build lies on local disk; asking for it later would let the resolver go online
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt -r requirements-bench.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/arena-seg serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests apps
	$(PY) -m pytest -q

# daily tier: every test but those marked slow (server start-ups, trainings, torchrun, the wheel build)
test-fast: $(STAMP)
	$(VENV)/bin/ruff check src tests apps
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/arena-seg bench fewshot --quick --out benchmarks/fewshot-quick
	$(VENV)/bin/arena-seg bench speed --out benchmarks/speed

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
