# Two entry points (see README): `make run` and `make test`. Both bootstrap everything.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: run test lint typecheck typecheck-tests check bench catalogue sync clean reliability

# mypy over tests/ (tests/mypy.ini, not strict): every directory holding test code is a base,
# as pytest imports each file by its name; each conftest.py (a name pytest allows twice) is
# checked in a run of its own.
TEST_DIRS := $(sort $(dir $(wildcard tests/*.py tests/*/*.py tests/*/*/*.py)))
TEST_CONFTESTS := $(filter-out tests/conftest.py,$(wildcard tests/*/conftest.py tests/*/*/conftest.py))
TEST_SOURCES := $(filter-out $(TEST_CONFTESTS),$(wildcard tests/*.py tests/*/*.py tests/*/*/*.py))
empty :=
space := $(empty) $(empty)
MYPY_TESTS := MYPYPATH=src:.:$(subst $(space),:,$(TEST_DIRS:/=)) $(VENV)/bin/mypy --config-file tests/mypy.ini

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(VENV)/.synced: pyproject.toml uv.lock $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

sync: $(VENV)/.synced

# `make run PORT=4100 MOCK_PORT=8190`: the gateway's and the in-process mock provider's ports
# (the example config's models follow the mock's port through $SPENDGATE_MOCK_URL).
PORT ?= 4000
MOCK_PORT ?= 8090

run: sync
	$(VENV)/bin/spendgate serve --config examples/config.yaml --port $(PORT) --mock-provider $(MOCK_PORT)

test: sync
	$(VENV)/bin/ruff check src tests bench tools reliability
	$(VENV)/bin/ruff format --check src tests bench tools reliability
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory typecheck-tests
	$(VENV)/bin/pytest

lint: sync
	$(VENV)/bin/ruff check src tests bench tools reliability
	$(VENV)/bin/ruff format --check src tests bench tools reliability

typecheck: sync
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory typecheck-tests

typecheck-tests: sync
	$(MYPY_TESTS) $(TEST_SOURCES)
	@for conftest in $(TEST_CONFTESTS); do echo "mypy $$conftest"; $(MYPY_TESTS) $$conftest || exit 1; done

bench: $(UV)
	$(UV) sync --frozen --python $(PYTHON) --group bench
	$(VENV)/bin/python bench/pricing.py

# The reliability suite: real processes under load and faults, minutes long, so not part of
# `make test`. Runs every script in reliability/ (or RELIABILITY="reliability/soak.py ..."),
# each bounded by its own loops and by a timeout; fails if any script fails. See
# docs/reliability.md for what each checks and the figures measured.
RELIABILITY ?= $(sort $(filter-out reliability/_%,$(wildcard reliability/*.py reliability/*.sh)))
RELIABILITY_TIMEOUT ?= 1800

reliability: sync
	@failed=""; for script in $(RELIABILITY); do \
		echo "== $$script"; \
		case $$script in *.sh) run="sh $$script";; *) run="$(VENV)/bin/python $$script";; esac; \
		timeout -s INT -k 30 $(RELIABILITY_TIMEOUT) $$run || failed="$$failed $$script"; \
	done; \
	if [ -n "$$failed" ]; then echo "reliability: FAILED:$$failed"; exit 1; fi; \
	echo "reliability: every script passed"

# Rebuild the bundled price catalogue and its reconciliation.json from the pinned price sources
# (the 'catalogue' dependency group, installed by sync: nothing is downloaded by the build).
catalogue: sync
	$(VENV)/bin/python -m tools.catalogue build

clean:
	rm -rf $(VENV) $(TOOLS)
