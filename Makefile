# One-command set-up: `make test` and `make demo` create .venv if needed, install torch 2.13.0
# first (so no other build of torch is ever pulled), then himo with every extra, pinned.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.himo-installed
DEMO_SCENARIO ?= beacon
DEMO_FRAMES ?= 100000
# Test processes: the suite's tests run one torch thread each, so two processes use both cores of a 2-core machine.
# Each test file runs whole in one process (its module fixtures are built once). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[minigrid,mpe,dev,tune,ray,docs,adapters]" -c constraints.txt
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: install
	$(BIN)/himo train $(DEMO_SCENARIO) --set train.frames=$(DEMO_FRAMES)

clean:
	rm -rf $(VENV) runs .pytest_cache
