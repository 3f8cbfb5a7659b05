# Two commands: `make demo` runs the product, `make test` runs every test.
# Each sets itself up on a fresh machine (venv, pip install; for tests Debian's chromium,
# spamassassin and npm, and axe-core from package-lock.json).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench soak lint system-deps translations clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

# Debian packages the tests use, each installed only when missing: chromium (browser tests),
# spamassassin (the emails' spam score), npm (to install axe-core).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-dejavu-core"; \
	command -v spamassassin >/dev/null 2>&1 || missing="$$missing spamassassin"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -z "$$missing" ] || { \
	  echo "Installing Debian's$$missing for the tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; }

# axe-core, pinned in package-lock.json; installed again when the lock file changes.
node_modules/.package-lock.json: package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The demo's detractor alerts land in the outbox too (instance/outbox/*alert*.eml); the
# promoters' page offers the (made-up) company site and review page.
DEMO_ENV := SURVEY_ENV=development SURVEY_SUPPORT_EMAIL=support@demo.example \
	SURVEY_SITE_URL=https://www.acme-analytics.example/ \
	SURVEY_REVIEW_URL=https://reviews.example/acme-analytics/write-a-review

demo: $(INSTALLED)
	$(DEMO_ENV) $(PY) -m survey_mailer.demo
	$(DEMO_ENV) $(VENV)/bin/survey-mailer worker & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(DEMO_ENV) $(VENV)/bin/gunicorn --bind 127.0.0.1:5000 --workers 2 \
	    --access-logfile - wsgi:app

test: $(INSTALLED) system-deps node_modules/.package-lock.json
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: $(INSTALLED)
	$(PY) bench/run.py

# A few minutes of everything at once (clicks, sending, alerts, dashboard and API reads),
# then checks that nothing was lost or doubled; on demand, not part of test or bench.
soak: $(INSTALLED)
	$(PY) bench/soak.py

translations: $(INSTALLED)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -o landing/translations/messages.pot .
	$(VENV)/bin/pybabel update -i landing/translations/messages.pot -d landing/translations
	$(VENV)/bin/pybabel compile -d landing/translations

clean:
	rm -rf $(VENV) instance .pytest_cache node_modules
