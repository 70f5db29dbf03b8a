# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing clipshift and its dependencies into $(VENV) (first run takes a few minutes)..."
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]" > $(VENV)/install.log 2>&1 \
		|| (grep -v "is ignored" $(VENV)/install.log | tail -40 >&2; echo "install failed: see $(VENV)/install.log" >&2; exit 1)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "clip-benchmark>=1.6,<2" >> $(VENV)/install.log 2>&1 \
		|| (tail -20 $(VENV)/install.log >&2; echo "install failed: see $(VENV)/install.log" >&2; exit 1)
	@$(BIN)/python -c "import clipshift, torch, open_clip" || (echo "install failed: see $(VENV)/install.log" >&2; exit 1)
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
