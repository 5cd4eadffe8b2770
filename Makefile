# The README's two quick-start commands live here. Both work on a bare machine: they create .venv,
# install torch==2.13.0 first (a local CPU wheel; any other torch resolution pulls GBs of CUDA), then us.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.poptrain-installed
TEST_STAMP := $(VENV)/.poptrain-test-extras

.PHONY: setup demo test lint slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The test suite also covers the MuJoCo Playground adapter: the `playground` extra (jax, mujoco; ~35 s, 1.2 GB),
# and the ray launcher backend on a local head: the `ray` extra (~75 s, ~700 MB).
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,playground,ray]"
	$(BIN)/python -m pip check
	touch $(TEST_STAMP)

setup: $(STAMP)

# Main job: a small PBT population on the built-in task, processes backend, CPU.
demo: $(STAMP)
	$(BIN)/python -m poptrain.demo

# Tests (what CI runs): lint, formatting, types, the fast suite.
test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs train_dir
