# rectifier: `make demo` sets up a fresh Debian 12 machine, builds and trains on Fashion-MNIST; `make test` runs the suite.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE   := cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps build demo test bench sanitize fixtures clean
all: build

deps:
	@scripts/install-deps.sh build

build: deps
	@$(CMAKE) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	$(BUILD)/rectifier train --data fashion-mnist --out model.safetensors --metrics metrics.jsonl

test: deps
	@scripts/install-deps.sh test
	@$(CMAKE) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The unit tests again under AddressSanitizer and UBSan.
sanitize: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRECTIFIER_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS) --target unit_tests rectifier_cli
	cd build-asan && ctest --output-on-failure -j$(JOBS) -L unit

bench: deps
	@scripts/install-deps.sh bench
	@$(CMAKE) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	bench/run.sh $(BUILD)

# Regenerate the PyTorch fixtures in tests/fixtures (needs python3-torch).
fixtures:
	/usr/bin/python3 tests/fixtures/make_fixtures.py tests/fixtures

clean:
	rm -rf $(BUILD) build-asan
