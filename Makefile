# spindex: `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spindex demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

# Throughput, CPU and memory benchmarks (about 15 minutes on 2 cores; the first run also renders
# and caches the corpus). `make bench BENCH_ARGS=--quick` for a short development run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m benchmarks.throughput $(BENCH_ARGS)
	$(PY) -m benchmarks.cpu $(BENCH_ARGS)
	$(PY) -m benchmarks.memory $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .spindex
