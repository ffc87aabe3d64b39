# hubrepro -- the only entry points. `make help` lists them.
# Two commands do all set-up on a fresh machine: `make book` and `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
# Every install goes through this file (CPU torch here). GPU users: CONSTRAINTS=constraints-gpu.txt
CONSTRAINTS ?= constraints.txt
# Parameter set for the notebooks: a folder of notebooks/params/ (default, tiny, classroom, paper, ...)
PARAMS      ?= default
EXTRAS      ?= clip,text,book,dev,index
# Notebooks executed at once (one kernel and one BLAS thread each); 2 suits the 2-core reference machine
NB_JOBS     ?= 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

INSTALLED := $(VENV)/.installed

.PHONY: help install data notebooks book test test-fast test-nb lint format assignments benchmarks clean distclean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

install: $(INSTALLED) ## create .venv and install everything through the constraints file

DATA_READY := _build/.data-ready

$(DATA_READY): $(INSTALLED) src/hubrepro/_data/stdlib_code_v1.jsonl.gz
	$(BIN)/hubrepro data verify
	$(BIN)/hubrepro data build
	@mkdir -p $(@D) && touch $@

data: $(DATA_READY) ## verify the embedded data and fill the embeddings cache (once; notebooks then share it)

notebooks: $(DATA_READY) ## execute every notebook with papermill into book/executed (cached by content hash)
	$(BIN)/python scripts/run_notebooks.py --params $(PARAMS) --jobs $(NB_JOBS)

book: notebooks ## build the HTML book into _build/html (warnings are errors)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "Open _build/html/index.html"

.PHONY: book-student
book-student: notebooks ## the book without the exercises' solutions, for students: _build/student/_build/html
	HUBREPRO_BOOK_EDITION=student $(BIN)/jupyter-book build . --path-output _build/student \
	    --warningiserror --nitpick --keep-going
	@echo "Open _build/student/_build/html/index.html"

test: $(INSTALLED) ## run the test suite: unit, property, CLI, notebooks (tiny) and the book build
	$(BIN)/python -m pytest

test-fast: $(INSTALLED) ## the inner loop: unit, property and CLI tests (no notebooks, no book)
	$(BIN)/python -m pytest -m "not notebook and not book and not slow and not gpu"

test-nb: $(INSTALLED) ## only the notebook smoke runs and the tiny book build
	$(BIN)/python -m pytest -m "notebook or book"

lint: $(INSTALLED) ## ruff check and format check
	$(BIN)/ruff check src tests scripts benchmarks book/_ext
	$(BIN)/ruff format --check src tests scripts benchmarks book/_ext

format: $(INSTALLED) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests scripts benchmarks book/_ext
	$(BIN)/ruff format src tests scripts benchmarks book/_ext

assignments: $(INSTALLED) ## generate student versions and graders of the classroom assignments into _build/assignments
	$(BIN)/python -m hubrepro.classroom build --out _build/assignments

benchmarks: $(INSTALLED) ## run the speed/memory benchmarks (prints ratios; not part of test)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean: ## remove build outputs (_build, book/executed); never data/
	rm -rf _build book/executed

distclean: clean ## also remove the virtual environment
	rm -rf $(VENV)
