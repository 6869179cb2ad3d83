# recattn: two commands do everything (see README.md).
#   make lab    set up .venv and open JupyterLab on lesson 00
#   make test   set up .venv and run the whole test suite
# TORCH_PIN installs a specific torch first, e.g. the CPU build:
#   make test TORCH_PIN="torch==2.13.0"
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_PIN ?=
JUPYTER_ARGS ?=

.PHONY: lab test venv exercises progress clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(if $(TORCH_PIN),$(BIN)/python -m pip install --quiet $(TORCH_PIN))
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

lab: venv
	$(BIN)/jupyter lab $(JUPYTER_ARGS) notebooks/00_setup_check.ipynb

test: venv
	$(BIN)/python -m pytest tests notebooks solutions \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -p no:cacheprovider

exercises: venv
	$(BIN)/python -m recattn_lessons.exercises build

progress: venv
	$(BIN)/python -m recattn_lessons.grading list exercises

clean:
	rm -rf $(VENV) runs .pytest_cache
