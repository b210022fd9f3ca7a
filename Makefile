# Concordance: `make demo` runs the portal with synthetic data; `make test` runs the whole suite.
# Both create .venv and install on first use. Variables: PYTHON (interpreter for the venv),
# DATABASE_URL / CELERY_BROKER_URL (PostgreSQL / Redis; SQLite and a file broker when unset),
# DEMO_STUDIES, PORT.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STUDIES ?= 2000
PORT ?= 8000
export SECRET_KEY_FILE ?= $(CURDIR)/var/secret_key
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test lint install clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'torch==2.13.0'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,train]'
	touch $(STAMP)

install: $(STAMP)

var/secret_key:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key

lint: $(STAMP)
	$(BIN)/ruff check .

# Tests keep their SQLite file and file-broker queue under var/test, apart from a running demo.
test: $(STAMP) var/secret_key
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	CONCORDANCE_VAR_DIR=$(CURDIR)/var/test CONCORDANCE_TLS=0 $(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) var/secret_key
	DJANGO_DEBUG=0 CONCORDANCE_TLS=0 AUDIT_SIGNING_KEY_CREATE=1 \
	  $(BIN)/python manage.py run_demo --studies $(DEMO_STUDIES) --port $(PORT)

clean-demo:
	rm -rf var/concordance.sqlite3* var/broker var/demo-logins.json var/celerybeat-schedule*
