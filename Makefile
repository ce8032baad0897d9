# Two commands on a fresh machine: `make run` (install, then open persona studio on the
# embedded model) and `make test` (install test tools, then run the whole suite).
# Both install exactly what uv.lock records; `make upgrade` is the only way a version moves.
PY ?= python3
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# uv from PATH when it is there, else a pinned copy from PyPI in .tools/
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
# Never download a Python: use the one that runs make; install into .venv.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup run serve test lint bench bench-check snapshots upgrade clean

$(TOOLS)/bin/uv:
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	@sh scripts/install-system-deps.sh
	$(UV) sync --locked --inexact --python $(PY) --quiet
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(UV) sync --locked --inexact --python $(PY) --extra test --quiet
	@touch $@

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/persona

serve: $(STAMP)
	$(BIN)/persona serve

test: $(TEST_STAMP)
	@sh scripts/install-llama.sh
	@sh scripts/install-chromium.sh
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Re-lock every dependency to its newest release within pyproject.toml's ranges, install it,
# and run the suite: commit uv.lock only when this passes.
upgrade: | $(UV)
	$(UV) lock --upgrade
	$(UV) sync --locked --inexact --python $(PY) --extra test
	@touch $(STAMP) $(TEST_STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/prepare.py
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/sampling.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/decode_profile.py
	$(BIN)/python bench/vs_llama.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/prefix_cache.py
	$(BIN)/python bench/hotswap.py
	$(BIN)/python bench/grammar.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/export.py

# The short benchmarks against the goals in docs/benchmarks.md (minutes, not part of the suite): run before a
# release; exits non-zero when a ratio misses its goal.
bench-check: $(STAMP)
	$(BIN)/python bench/check.py

snapshots: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/tui --snapshot-update

clean:
	rm -rf $(VENV) $(TOOLS)
