# tfgate — the commands a fresh machine needs: `make demo`, `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint protos bench peer-bench clean

install: $(STAMP)

# Rebuilt only when the pins or the project metadata change; otherwise a no-op.
$(STAMP): pyproject.toml requirements/lock.txt requirements/oip.txt requirements/perf.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==25.3
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[dev]'
	# checkov (tests/k8s) in its own venv: it pins termcolor<2.4, below TensorFlow's.
	test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install -q pip==25.3
	$(VENV)/checkov/bin/python -m pip install -q -r requirements/checkov.txt
	# Triton's and KServe's v2 clients (tests/oip) in their own venv: tritonclient pins ml-dtypes below TensorFlow's.
	test -x $(VENV)/oip/bin/python || $(PYTHON) -m venv $(VENV)/oip
	$(VENV)/oip/bin/python -m pip install -q pip==25.3
	$(VENV)/oip/bin/python -m pip install -q -r requirements/oip.txt
	# perf_analyzer (benchmarks/oip_bench.py): the native binary that tritonclient 2.50.0's wheel carries.
	test -x $(VENV)/perf/bin/python || $(PYTHON) -m venv $(VENV)/perf
	$(VENV)/perf/bin/python -m pip install -q --no-deps -r requirements/perf.txt
	touch $(STAMP)

demo: install
	$(BIN)/tfgate demo

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .

# Regenerates protos/tfgate/**/*_pb2*.py from the .proto files (tests/gateway fails if they are stale).
protos: install
	$(BIN)/python protos/generate.py

# Every benchmark, each against its baseline in the same run; figures and PNGs go to benchmarks/results/.
# The serving and gateway runs use the models `make demo` trained (work/models/).
bench: install
	$(BIN)/python benchmarks/pipeline_bench.py
	$(BIN)/python benchmarks/train_bench.py
	$(BIN)/python benchmarks/serving_bench.py --housing work/models/housing --fashion work/models/fashion
	$(BIN)/python benchmarks/gateway_bench.py --housing work/models/housing --fashion work/models/fashion
	$(BIN)/python -m benchmarks.reliability

# Peer benchmark (issue 20): tfgate's model server beside KServe, MLServer and Ray Serve, each peer in its own
# venv (.venv/peers/<peer>, pinned in requirements/peers/), Debian's wrk as the load generator, the demo models
# (trained briefly here if `make demo` has not made them: speed, not accuracy, is measured).
PEERS := kserve mlserver ray
peer-bench: install $(foreach p,$(PEERS),$(VENV)/peers/$(p)/.installed)
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; else echo "apt-get install -y wrk"; exit 2; fi; }
	test -d work/models/housing || { $(BIN)/tfgate pipeline housing --input data/housing/housing.csv --output work/housing && $(BIN)/tfgate train housing --data work/housing --model-base-path work/models/housing --epochs 2; }
	test -d work/models/fashion || { $(BIN)/tfgate pipeline fashion --input data/fashion-mnist --output work/fashion && $(BIN)/tfgate train fashion --data work/fashion --model-base-path work/models/fashion --epochs 1; }
	$(BIN)/python -m benchmarks.peer_bench

$(VENV)/peers/%/.installed: requirements/peers/%.txt
	test -x $(VENV)/peers/$*/bin/python || $(PYTHON) -m venv $(VENV)/peers/$*
	$(VENV)/peers/$*/bin/python -m pip install -q pip==25.3
	$(VENV)/peers/$*/bin/python -m pip install -q -r requirements/peers/$*.txt
	touch $@

clean:
	rm -rf work models
