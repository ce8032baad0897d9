# Two commands on a fresh machine: `make run` (install, then open persona studio on the
# embedded model) and `make test` (install test tools, then run the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup run serve test lint bench snapshots clean

$(STAMP): pyproject.toml
	@sh scripts/install-system-deps.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/persona

serve: $(STAMP)
	$(BIN)/persona serve

test: $(TEST_STAMP)
	@sh scripts/install-llama.sh
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/prepare.py
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/sampling.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/hotswap.py
	$(BIN)/python bench/grammar.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/export.py

snapshots: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/tui --snapshot-update

clean:
	rm -rf $(VENV)
