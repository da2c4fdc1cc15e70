# The two commands a newcomer needs (see README): `make quickstart` and `make test`.
# Both create .venv on first use (scripts/bootstrap.sh picks a CPU or CUDA torch).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint bench clean

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $@

quickstart: $(VENV)/.installed
	$(BIN)/groupwise launch studies/quickstart.yaml

test: $(VENV)/.installed
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/python -m ruff check src tests bench examples
	$(BIN)/python -m ruff format --check src tests bench examples
	$(BIN)/python -m mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed
	$(BIN)/python bench/step_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
