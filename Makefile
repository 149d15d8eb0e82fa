# Every target creates .venv and installs what it needs: these commands work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo installs only what it runs on (Flask and SQLAlchemy), in its own venv.
DEMO_VENV := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed

.PHONY: test demo demo-smoke lint bench soak clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src integrations tests example_apps benchmarks scripts
	$(BIN)/mypy src/licenzy_embed integrations
	$(BIN)/pytest $(PYTEST_ARGS)

$(DEMO_STAMP): pyproject.toml
	$(PY) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install -q -e '.[flask,sqlalchemy]'
	touch $(DEMO_STAMP)

# Serves the demo SaaS on http://127.0.0.1:8000 until Ctrl-C; state in .demo/ (DEMO_PORT and
# DEMO_STATE_DIR override them; STRIPE_API_KEY & co. switch it to Stripe test mode).
demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python example_apps/demo/app.py

# What CI checks of `make demo`: it starts, serves /pricing, and stops.
demo-smoke:
	.ci/demo_smoke

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Several processes, webhooks shuffled and duplicated, spends with retries and database cuts,
# then the invariants checked in the database (RELIABILITY.md); SOAK_ARGS="--url … --seconds …".
soak: $(STAMP)
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_VENV) build dist *.egg-info src/*.egg-info
