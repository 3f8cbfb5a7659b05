# Two commands: `make demo` runs the product, `make test` runs every test.
# Each sets itself up on a fresh machine (venv, pip install, Debian's chromium for tests).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench lint chromium translations clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

# The demo's detractor alerts land in the outbox too (instance/outbox/*alert*.eml).
DEMO_ENV := SURVEY_ENV=development SURVEY_SUPPORT_EMAIL=support@demo.example

demo: $(INSTALLED)
	$(DEMO_ENV) $(PY) -m survey_mailer.demo
	$(DEMO_ENV) $(VENV)/bin/survey-mailer worker & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(DEMO_ENV) $(VENV)/bin/gunicorn --bind 127.0.0.1:5000 --workers 2 \
	    --access-logfile - wsgi:app

test: $(INSTALLED) chromium
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: $(INSTALLED)
	$(PY) bench/run.py

translations: $(INSTALLED)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -o landing/translations/messages.pot .
	$(VENV)/bin/pybabel update -i landing/translations/messages.pot -d landing/translations
	$(VENV)/bin/pybabel compile -d landing/translations

clean:
	rm -rf $(VENV) instance .pytest_cache
