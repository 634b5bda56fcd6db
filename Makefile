# billing-bot: `make run` starts the bot locally, `make test` runs the whole suite.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest chat bench bench-storage bench-storage-pg bench-reminders bench-load clean i18n

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
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

test: pytest lint typecheck

bench-storage: $(STAMP)
	$(BIN)/python bench/storage.py

# The same stores and operations on PostgreSQL beside TinyDB (issue 21): a throw-away cluster
# with fsync on (or BOT_BENCH_POSTGRES_URL), each store copied there by `store copy`'s code.
bench-storage-pg: $(STAMP)
	$(BIN)/python bench/storage.py --engine postgresql --sizes 1000,100000 --rounds 5

bench-reminders: $(STAMP)
	$(BIN)/python bench/reminders_sim.py --days 30 --cases 5000 --seed 1

# The load benchmark: a real serve on a seeded 100,000-case store against bare slack-bolt and
# bare botbuilder, same requests, same run (see docs/benchmarks.md).
bench-load: $(STAMP)
	$(BIN)/python bench/load.py --cases 100000 --concurrency 50 --requests 3000 --rounds 2

# Everything, < 10 minutes on 2 cores: storage (+ scheduler sweep, serve RSS), reminders, load.
bench: bench-storage bench-reminders bench-load

# Message catalogs (docs: bot/i18n.py): extract every `_()`, `N_()` and `ngettext()` text into
# the template, merge it into each language's .po (new messages arrive untranslated, never
# fuzzy; dropped ones are removed), then compile the .mo files. No source locations and sorted
# output, so a new message is a small diff. Commit the .pot and the .po files, not the .mo.
LOCALE_DIR := bot/locale
POT := $(LOCALE_DIR)/billing-bot.pot
LANGS := zh_CN

i18n: $(STAMP)
	@mkdir -p $(LOCALE_DIR)
	$(BIN)/pybabel --quiet extract -F babel.cfg --no-default-keywords -k _ -k N_ -k ngettext:1,2 \
		--no-location --sort-output --add-comments=TRANSLATORS: \
		--project=billing-bot --version=0.1.0 -o $(POT).new .
	@# Keep the old template when only its creation date would change.
	@if [ -f $(POT) ] && diff -q -I '^"POT-Creation-Date:' $(POT) $(POT).new >/dev/null; \
		then rm $(POT).new; else mv $(POT).new $(POT); fi
	@for lang in $(LANGS); do \
		$(BIN)/pybabel --quiet update -D billing-bot -i $(POT) -d $(LOCALE_DIR) -l $$lang \
			--init-missing --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date \
			|| exit 1; \
	done
	$(BIN)/python -m bot.i18n compile

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
