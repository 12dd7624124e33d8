# The two commands of the quick start are `make demo` and `make test`; both create .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ALERT_PIPELINE_HOME ?= data
HOME_ABS := $(abspath $(ALERT_PIPELINE_HOME))

.PHONY: install demo test lint format ui clean-home

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/alert-pipeline demo --home $(ALERT_PIPELINE_HOME)

test: $(STAMP)
	$(BIN)/python -m pytest --cov=alert_pipeline --cov-report=term-missing:skip-covered \
		--cov-fail-under=90

lint: $(STAMP)
	$(BIN)/ruff format --check alert_pipeline alert_pipeline_tests docs/examples
	$(BIN)/ruff check alert_pipeline alert_pipeline_tests docs/examples

format: $(STAMP)
	$(BIN)/ruff format alert_pipeline alert_pipeline_tests docs/examples
	$(BIN)/ruff check --fix alert_pipeline alert_pipeline_tests docs/examples

# The Dagster UI on the same home as the demo, so its materializations are visible.
ui: $(STAMP)
	mkdir -p $(HOME_ABS)/dagster
	test -f $(HOME_ABS)/dagster/dagster.yaml || cp deploy/dagster.local.yaml $(HOME_ABS)/dagster/dagster.yaml
	ALERT_PIPELINE_HOME=$(HOME_ABS) DAGSTER_HOME=$(HOME_ABS)/dagster \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean-home:
	find $(ALERT_PIPELINE_HOME) -mindepth 1 -maxdepth 1 ! -name sample_logs.csv ! -name README.md \
		-exec rm -rf {} +
