# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.installed-base
STAMP_TEST := $(VENV)/.installed-test
# axe-core, the accessibility checker the web UI's browser tests inject into each page,
# from the npm registry (checked against its integrity digest; no Node.js needed)
AXE_VERSION := 4.14.1
AXE_INTEGRITY := sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
AXE := .cache/npm/axe-core-$(AXE_VERSION)/axe.min.js

.PHONY: demo test lint typecheck layers clean bench docs screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_BASE)

demo: $(STAMP_BASE)
	rm -rf demo-project
	mkdir -p demo-project
	cd demo-project && ../$(BIN)/trenches demo

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

# The layers of docs/architecture.md, as contracts in .importlinter.
layers: $(STAMP_TEST)
	$(BIN)/lint-imports

$(AXE): | $(BIN)/python
	$(BIN)/python tests/tools/npm_fetch.py axe-core $(AXE_VERSION) $(AXE_INTEGRITY) axe.min.js

test: $(STAMP_TEST) $(AXE) lint typecheck layers
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=15

# The trenches.toml reference in docs/configuration.md, from the declaration of its keys.
docs: $(STAMP_BASE)
	$(BIN)/python -m trenches.settings --markdown docs/configuration.md

# Every page of the web UI at 1280x800, into docs/images/ (docs/ui.md shows them);
# needs Chromium at /usr/bin/chromium (apt-get install chromium).
screenshots: $(STAMP_TEST) $(AXE)
	$(BIN)/python tests/tools/screenshots.py docs/images

bench: $(STAMP_TEST)
	$(BIN)/python bench/import_patterns.py

clean:
	rm -rf $(VENV) demo-project .pytest_cache .mypy_cache .ruff_cache
