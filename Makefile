# billing-bot: `make run` starts the bot locally, `make test` runs the whole suite.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest chat bench bench-storage bench-reminders clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (billing-bot needs Python 3.11+; set PY=python3.x)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m bot.i18n compile
	@touch $(STAMP)

run: $(STAMP)
	@echo "billing-bot on http://127.0.0.1:3978 — chat with it from another terminal: $(BIN)/billing-bot chat --as alice"
	$(BIN)/billing-bot serve --host 127.0.0.1 --port 3978

chat: $(STAMP)
	$(BIN)/billing-bot chat

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bot adapters conversations tests bench
	$(BIN)/ruff format --check bot adapters conversations tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: pytest lint typecheck

bench-storage: $(STAMP)
	$(BIN)/python bench/storage.py

bench-reminders: $(STAMP)
	$(BIN)/python bench/reminders_sim.py --days 30 --cases 5000 --seed 1

bench: bench-storage bench-reminders

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
