# milterhub — thin wrapper around meson/ninja and the test runner.
#
#   make / make build     install missing Debian packages, configure build/ once, ninja
#   make test             build, then tests/run (unit, integration, interop, fuzz)
#   make test SANITIZE=1  the same in build-san/ with ASan+UBSan; any report is fatal
#   make demo             build, then scripts/demo (runs the hub and the tools end to end)
#   make bench            bench/run if present
#   make fuzz             every libFuzzer target of tests/fuzz for FUZZ_SECONDS each (60);
#                         FUZZ_TARGETS="fuzz_child_link ..." picks some (needs clang)
#   make format           clang-format -i on src/ tools/ tests/
#   make clean            remove the build directories
#
# Everything real lives in meson.build, scripts/ and tests/run; keep this file thin.

SHELL := /bin/bash

ifeq ($(SANITIZE),1)
BUILD ?= build-san
SETUP_ARGS := -Db_sanitize=address,undefined -Db_lundef=false
# Any sanitizer report aborts the process, so a test can never pass over one.
export ASAN_OPTIONS := abort_on_error=1:halt_on_error=1:detect_leaks=1
export UBSAN_OPTIONS := abort_on_error=1:halt_on_error=1:print_stacktrace=1
else
BUILD ?= build
SETUP_ARGS :=
endif

.PHONY: all build deps test demo bench fuzz format clean

all: build

deps:
	@bash scripts/install-deps

# meson setup only when the directory is not configured yet; ninja reconfigures by itself
# when meson.build changes. A half-made directory (setup interrupted) is wiped and redone.
build: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then \
		set -- $(BUILD) $(SETUP_ARGS); \
		if [ -f $(BUILD)/meson-private/coredata.dat ]; then set -- --wipe "$$@"; fi; \
		echo "meson setup $$*"; \
		meson setup "$$@" || exit 1; \
	fi
	@ninja -C $(BUILD)

test: build
	@bash tests/run --build $(BUILD)

demo: build
	@bash scripts/demo --build $(BUILD)

bench: build
	@if [ -x bench/run ]; then bench/run --build $(BUILD); \
	else echo "bench: no bench/run yet"; fi

# Separate from the meson build: tests/fuzz/build-and-run.sh compiles with clang itself.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz:
	@bash tests/fuzz/build-and-run.sh --each $(FUZZ_SECONDS) $(FUZZ_TARGETS)

format:
	@command -v clang-format >/dev/null || { echo "format: clang-format not installed (apt-get install clang-format)"; exit 1; }
	@find src tools tests -type f \( -name '*.c' -o -name '*.h' \) -print0 | xargs -0 -r clang-format -i

clean:
	rm -rf build build-san
