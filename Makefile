# Every target creates or updates .venv itself; running one twice does nothing new the second time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test bench lint venv clean constraints services

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Pin PyTorch first: the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/forecaster demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_simulate.py
	$(BIN)/python bench/bench_revalue.py
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_chain_features.py

# The development tracking server on PostgreSQL (foreground; Ctrl-C stops it): database $(MLFLOW_DB) on the local
# server (created if missing), artifacts in ./mlartifacts, http://127.0.0.1:5000. Then, in another shell:
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:5000   and every forecaster command (train, retrain, serve) uses it.
PG_URL ?= postgresql://postgres@127.0.0.1:5432
MLFLOW_DB ?= mlflow
MLFLOW_PORT ?= 5000
services: $(STAMP)
	$(BIN)/python -c "import psycopg; c = psycopg.connect('$(PG_URL)/postgres', autocommit=True); \
	  c.execute('CREATE DATABASE \"$(MLFLOW_DB)\"') if not c.execute(\"SELECT 1 FROM pg_database WHERE datname = '$(MLFLOW_DB)'\").fetchone() else None"
	$(BIN)/mlflow server --backend-store-uri $(PG_URL)/$(MLFLOW_DB) --artifacts-destination ./mlartifacts \
	  --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# After adding a dependency to pyproject.toml: install it (existing packages stay as they are), record every version.
constraints:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet --upgrade -e ".[dev]"
	{ head -n 2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -iv '^torch=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
