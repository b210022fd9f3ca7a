# Concordance: `make demo` runs the portal with synthetic data; `make test` runs the whole suite.
# Both create .venv and install on first use. Variables: PYTHON (interpreter for the venv),
# DATABASE_URL / CELERY_BROKER_URL (PostgreSQL / Redis; SQLite and a file broker when unset),
# DEMO_STUDIES, PORT.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: the demo installs only what it runs; the tests add the dev tools and the model-building
# extra (PyTorch, CPU build from this machine's local wheel) that tests/training needs.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
DEMO_STUDIES ?= 2000
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint install clean-demo browser system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $(DEMO_STAMP)

# system-packages first: the dev extra includes `directory`, whose python-ldap builds against them.
$(TEST_STAMP): pyproject.toml | $(BIN)/python system-packages
	$(PIP) 'torch==2.13.0'
	$(PIP) -e '.[dev,train]'
	touch $(TEST_STAMP) $(DEMO_STAMP)

install: $(TEST_STAMP)

# The settings read var/secret_key when the portal serves loopback only (demo, tests, README commands).
var/secret_key:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key

# Debian's Chromium for the browser tests: found, installed (root + apt-get), or one line saying what to do.
browser:
	.ci/ensure-chromium

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

# OpenLDAP's slapd and tools (the LDAP tests start one) and the headers python-ldap builds against.
system-packages:
	.ci/ensure-system-packages

# Tests keep their SQLite file and file-broker queue under var/test, apart from a running demo.
test: system-packages $(TEST_STAMP) var/secret_key browser
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	CONCORDANCE_VAR_DIR=$(CURDIR)/var/test CONCORDANCE_TLS=0 $(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(DEMO_STAMP) var/secret_key
	DJANGO_DEBUG=0 CONCORDANCE_TLS=0 AUDIT_SIGNING_KEY_CREATE=1 \
	  $(BIN)/python manage.py run_demo --studies $(DEMO_STUDIES) --port $(PORT)

clean-demo:
	rm -rf var/concordance.sqlite3* var/broker var/demo-logins.json var/celerybeat-schedule*
