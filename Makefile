# The two commands of the contract: `make run` and `make test`.
# Dockerfile runs the same `make install`, so dependencies have one source of truth.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --constraint constraints.txt

.PHONY: install install-dev run test test-fast lint fresh-check clean messages

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

# The bot's words (bot/i18n.py): each locales/<language>/LC_MESSAGES/bot.po compiles to the
# bot.mo beside it, with Babel from the install. The .mo files are build outputs, not committed.
CATALOGS := $(patsubst %.po,%.mo,$(wildcard locales/*/LC_MESSAGES/bot.po))
# Message ids in code: tr.t("id"), tr.n("id", count) (plural forms), N_("id") (kept, said later).
KEYWORDS := --no-default-keywords -k t -k n:1,1 -k N_

locales/%.mo: locales/%.po $(VENV)/.installed
	$(VENV)/bin/pybabel -q compile -i $< -o $@

install: $(VENV)/.installed $(CATALOGS)

install-dev: $(VENV)/.installed-dev $(CATALOGS)

# After adding or renaming a message id in code: every catalog gets the new ids as empty
# entries (fill in both, then `make install`); ids no longer in code are dropped.
messages: install
	$(VENV)/bin/pybabel -q extract $(KEYWORDS) --no-location -o locales/bot.pot bot
	$(VENV)/bin/pybabel -q update --no-fuzzy-matching --ignore-obsolete \
	  -i locales/bot.pot -d locales -D bot

run: install
	$(PY) -m bot

# Tests run on every core (pytest-xdist): most of the slow ones wait on processes and timeouts.
test: install-dev
	$(PY) -m pytest -q -n auto

# The suite without the process-level tests (marked slow): under 90 s, for the edit-test loop.
test-fast: install-dev
	$(PY) -m pytest -q -n auto -m "not slow"

lint: install-dev
	$(PY) -m ruff check .

# Clone the committed main into a temporary directory (../shared linked beside it when present)
# and run the CI entry there: catches files that exist only in this working tree. The clone and
# its fresh .venv are removed afterwards, whatever the outcome.
fresh-check:
	@if [ -n "$$(git status --porcelain --untracked-files=no)" ]; then \
	  echo "fresh-check: testing the last commit; uncommitted changes are left out"; fi
	d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && git clone -q . "$$d/main" && \
	  if [ -d ../shared ]; then ln -s "$$(cd ../shared && pwd)" "$$d/shared"; fi && \
	  cd "$$d/main" && ./.ci/run

clean:
	rm -rf $(VENV) build *.egg-info locales/bot.pot $(CATALOGS)
