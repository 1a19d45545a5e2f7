# Two commands on a fresh machine: `make demo` (train on the built-in demo data, then inpaint photos) and
# `make test` (the whole pytest suite). Both create .venv and install the package with its dev extras first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= outputs/demo

.PHONY: demo test bench lint install browser

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium (no browser download at run time).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
		(apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)) || \
		echo "warning: could not install chromium; the browser test will be skipped"

demo: $(STAMP)
	$(PY) -m dmfn_lightning.train +experiment=demo hydra.run.dir=$(DEMO_DIR)
	$(PY) -m dmfn_lightning.data.export_demo --export $(DEMO_DIR)/photos
	$(PY) -m dmfn_lightning.inpaint --checkpoint $(DEMO_DIR)/generator.pt --image $(DEMO_DIR)/photos/images \
		--mask $(DEMO_DIR)/photos/masks --output $(DEMO_DIR)/inpainted_photos
	@echo "demo done: panels in $(DEMO_DIR)/images, inpainted photos in $(DEMO_DIR)/inpainted_photos"

test: $(STAMP) browser
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.run

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
