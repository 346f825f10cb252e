# The README's two commands: `make demo` and `make test`. Both create the virtual environment
# (.venv) and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (on this project's dev/CI disk; elsewhere pip fetches it from PyPI).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-all test-gpu lint format compile clean bench-quick results lock

# requirements.lock: the exact versions of every dependency but torch, shared with both images.
LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" "setuptools<81" wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev,demo]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install twhin-bert with its dev tools

demo: $(STAMP)  ## the whole pretrain pipeline locally on generated demo data (tiny config)
	$(BIN)/twhin-bert run --config tiny --workdir twhin-bert-runs

test: $(STAMP)  ## the default test suite (slow and GPU tests excluded)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-gpu: $(STAMP)  ## the prepared GPU check (one H100/H200, < 8 min): scripts/gpu_check.sh
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[gpu]"
	PATH="$(abspath $(BIN)):$$PATH" scripts/gpu_check.sh

lock:  ## rewrite requirements.lock from the current .venv (after `make install` on a fresh clone)
	{ sed -n '/^#/p' $(LOCK); $(BIN)/python -m pip freeze --all --exclude-editable \
	  | grep -v -e '^torch==' -e '^faiss-gpu' | LC_ALL=C sort -f; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

test-all: $(STAMP)  ## every test, the slow ones included (GPU tests need a GPU)
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check components pipelines tests scripts
	$(BIN)/ruff format --check components pipelines tests scripts

format: $(STAMP)
	$(BIN)/ruff check --fix components pipelines tests scripts
	$(BIN)/ruff format components pipelines tests scripts

compile: $(STAMP)  ## compile both pipelines with the prod config
	$(BIN)/twhin-bert compile --config prod --pipeline pretrain --out build/twhin-bert-pretrain.yaml
	$(BIN)/twhin-bert compile --config prod --pipeline retrain --out build/twhin-bert-retrain.yaml

# Real tweets (TweetEval/UMSAB layout) for the benchmarks that embed or train on text.
BENCH_DATA ?= $(wildcard $(abspath ../shared/data))

bench-quick: $(STAMP)  ## every benchmark in quick mode
	for b in ingest embed-graph mine pretrain embed resume; do \
	  TWHIN_BERT_BENCH_DATA="$(BENCH_DATA)" $(BIN)/twhin-bert bench $$b --quick || true; done

# RESULTS_ARGS, e.g. "--only ingest,mine --quick" or "--pipeline-run DIR --name tiny".
RESULTS_ARGS ?=

results: $(STAMP)  ## run the benchmarks, record each, regenerate docs/RESULTS.md
	TWHIN_BERT_BENCH_DATA="$(BENCH_DATA)" $(BIN)/twhin-bert results run $(RESULTS_ARGS)

clean:
	rm -rf $(VENV) build twhin-bert-runs .pytest_cache
