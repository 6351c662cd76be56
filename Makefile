# Two entry points for a fresh Debian/Ubuntu machine with Python 3.11:
#   make demo   - offline demo on a rendered synthetic street
#   make test   - the test suite (what .ci/run runs)
# Both create .venv, install the system library Open3D needs, and install the package.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml Makefile
	@bash scripts/system_deps.sh "$(PY)"
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mono-metric demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) outputs
