# The two commands a fresh machine needs (see README):
#   make demo   set everything up and run the example study end to end
#   make test   set up if needed and run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.radlang-installed

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# numpy first: pyradiomics 3.0.1 builds against it without build isolation
	$(BIN)/pip install -q numpy versioneer
	# the CPU build of torch that lies on disk (a plain `torch` would pull CUDA)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-build-isolation pyradiomics==3.0.1
	# survival-gpl (scikit-survival, GPL-3) only as the oracle of the survival-metric tests: radlang runs without it;
	# flower for the federated deployment test on loopback
	$(BIN)/pip install -q -e '.[science,test,survival-gpl,flower]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/radlang check examples/quickstart.rad
	$(BIN)/radlang plan examples/quickstart.rad
	$(BIN)/radlang run examples/quickstart.rad --out runs/quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) runs build dist
