# The README's two commands: `make demo` (main job on SQLite + the local emulator) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml plugins/zoho_books/pyproject.toml plugins/quickbooks/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./plugins/zoho_books -e ./plugins/quickbooks
	touch $(STAMP)

venv: $(STAMP)

# make demo ARGS=--serve keeps the server, the emulator and the operator console up after the checks.
demo: $(STAMP)
	$(BIN)/python -m demo $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check integration_core plugins tests bench reference_host demo examples conftest.py
	$(BIN)/mypy integration_core plugins/zoho_books/zoho_books plugins/quickbooks/quickbooks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check integration_core plugins tests bench reference_host demo examples conftest.py
	$(BIN)/mypy integration_core plugins/zoho_books/zoho_books plugins/quickbooks/quickbooks

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
