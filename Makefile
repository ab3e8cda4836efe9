# Two entry points (see README): `make run` and `make test`. Both bootstrap everything.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: run test lint typecheck check bench catalogue sync clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(VENV)/.synced: pyproject.toml uv.lock $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

sync: $(VENV)/.synced

run: sync
	$(VENV)/bin/spendgate serve --config examples/config.yaml --mock-provider 8090

test: sync
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: sync
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools

typecheck: sync
	$(VENV)/bin/mypy

bench: $(UV)
	$(UV) sync --frozen --python $(PYTHON) --group bench
	$(VENV)/bin/python bench/pricing.py

# Rebuild the bundled price catalogue from the pinned upstream wheels (downloaded at build time only).
catalogue: sync
	PATH="$(abspath $(TOOLS))/bin:$$PATH" $(VENV)/bin/python -m tools.catalogue build

clean:
	rm -rf $(VENV) $(TOOLS)
