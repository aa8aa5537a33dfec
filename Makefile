# deepnmf: every target sets up the local virtual environment from the project's own files.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The CPU build of torch 2.13.0 is what these machines carry; pin it so pip never pulls CUDA wheels.
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_PIN)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/deepnmf demo --out demo-output

test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --durations=15 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_nmf.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
