# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing clipshift and its dependencies into $(VENV) (first run takes a few minutes)..."
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	@$(BIN)/python -c "import clipshift, torch, open_clip" || (echo "install failed" >&2; exit 1)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@$(BIN)/clipshift demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check clipshift tests
	$(BIN)/ruff format --check clipshift tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/clipshift bench world

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
