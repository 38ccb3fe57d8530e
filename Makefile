# HGAD in C: top-level build.
#   make            library, hgad command, tests and benchmarks binaries
#   make test       check dependencies, build and run the unit suite
#   make bench      benchmarks (OpenBLAS and PyTorch compared in the same run)
#   make asan       unit suite under AddressSanitizer + UBSan
#   make valgrind   unit suite under valgrind memcheck (leak-free)
#   make demo       the main job on built-in synthetic data (no downloads)
#   make clean
#   make MPI=1 [test-mpi]   data-parallel build over MPI in build-mpi/ (docs/distributed.md)

# MPI=1: the data-parallel build (mpicc, -DHG_MPI, pipeline/comm_mpi.c instead
# of pipeline/comm_single.c) in its own directory.
MPI     ?= 0
ifeq ($(MPI),1)
ifneq ($(origin CC),command line)
CC      := mpicc
endif
BUILD   ?= build-mpi
endif
CC      ?= cc
# CFLAGS/LDFLAGS are the user's (optimization, sanitizers); the project's own
# flags are always added after them.
CFLAGS  ?= -O3 -g
LDFLAGS ?=
HG_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fopenmp -I. -fPIC
HG_LDFLAGS := -fopenmp
ifeq ($(MPI),1)
HG_CFLAGS  += -DHG_MPI
endif
LDLIBS  += -lpng -ljpeg -lm
BUILD   ?= build
# Debian's python3 (with python3-torch) for fixtures and side-by-side benchmarks;
# a python3 earlier on PATH (pyenv, venv) may lack torch.
PYTHON  ?= /usr/bin/python3
export PYTHON
COMPILE := $(CC) $(CFLAGS) $(HG_CFLAGS)
LINK    := $(CC) $(LDFLAGS) $(HG_LDFLAGS)

LAYERS  := tensor autograd nn models datasets pipeline report
LIB_SRC := $(foreach d,$(LAYERS),$(wildcard $(d)/*.c))
ifeq ($(MPI),1)
LIB_SRC := $(filter-out pipeline/comm_single.c,$(LIB_SRC))
else
LIB_SRC := $(filter-out pipeline/comm_mpi.c,$(LIB_SRC))
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/libhgad.a

CLI_SRC := $(wildcard cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
HGAD    := $(BUILD)/hgad

TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))

BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: deps all lib test bench asan valgrind clean check-deps check-bench-deps demo parity fuzz format

all: check-deps $(LIB) $(HGAD) $(TEST_BIN)

lib: $(LIB)

check-deps:
	@sh tools/check-deps.sh build

# Files named *_avx2.c hold AVX2/FMA kernels chosen at run time (tensor/cpu.h); only
# they get the flags. *_avx512.c files carry per-function target attributes instead.
$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(COMPILE) -mavx2 -mfma -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(COMPILE) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(HGAD): $(CLI_OBJ) $(LIB)
	$(LINK) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) $(LIB)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) $< $(TEST_UTIL) $(LIB) -lcmocka $(LDLIBS) -o $@

test: check-deps $(TEST_BIN) $(HGAD)
	@sh tests/run.sh $(BUILD) $(TEST_BIN)

# Benchmarks link OpenBLAS for comparison only; the library never does.
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) $< $(LIB) -lopenblas $(LDLIBS) -o $@

bench: check-deps check-bench-deps $(BENCH_BIN)
	@sh bench/run.sh $(BUILD) $(BENCH_BIN)

check-bench-deps:
	@sh tools/check-deps.sh bench

asan:
	HG_SANITIZE=1 $(MAKE) BUILD=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" test

valgrind: check-deps $(TEST_BIN)
	@HG_VALGRIND=1 sh tests/run.sh $(BUILD) $(TEST_BIN)

demo: check-deps $(HGAD)
	@sh tools/demo.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz build-mpi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

# Installs the Debian packages needed to build and test (run as root or with sudo).
deps:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends \
	  gcc make libc6-dev libgomp1 libpng-dev libjpeg62-turbo-dev libcmocka-dev pkgconf

# Fuzzing with clang's libFuzzer + ASan/UBSan: the safetensors reader and its JSON
# parser, for FUZZ_TIME seconds, on build-fuzz/corpus (seeded from a copy of
# tools/fuzz_corpus/safetensors; the committed seeds are never modified). Inputs
# that crash are saved as build-fuzz/crashes/crash-*. No OpenMP here: the code
# only uses it through pragmas, which are ignored.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
FUZZ_SRC  := tools/fuzz_safetensors.c nn/json.c nn/safetensors.c tensor/tensor.c tensor/storage_pool.c tensor/error.c tensor/half.c

build-fuzz/fuzz_safetensors: $(FUZZ_SRC) nn/json.h nn/safetensors.h tensor/tensor.h tensor/error.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -I. -g -O1 -fno-omit-frame-pointer -Wno-unknown-pragmas \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $(FUZZ_SRC) -lm -o $@

fuzz: build-fuzz/fuzz_safetensors
	@mkdir -p build-fuzz/corpus build-fuzz/crashes
	cp tools/fuzz_corpus/safetensors/* build-fuzz/corpus/
	build-fuzz/fuzz_safetensors -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	  -artifact_prefix=build-fuzz/crashes/ build-fuzz/corpus

# ---- opt-in backbone parity with PyTorch (make parity) ----
# Random-weight fixtures of the four backbones (about 500 MB) are written to
# $(BUILD)/parity by the fixture script (python3-torch, python3-torchvision),
# then compared with tolerance 1e-4 (max error / max value). The source sits in
# tests/parity/ so that the unit suite (tests/test_*.c) does not pick it up.
PARITY_BIN := $(BUILD)/tests/parity_backbones

$(PARITY_BIN): tests/parity/parity_backbones.c $(TEST_UTIL) $(LIB)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) $< $(TEST_UTIL) $(LIB) -lcmocka $(LDLIBS) -o $@

parity: $(PARITY_BIN)
	@sh tools/check-deps.sh parity
	$(PYTHON) tools/fixtures/make_backbone_fixtures.py parity --out $(BUILD)/parity
	$(PARITY_BIN) $(BUILD)/parity

# ---- example programs (make examples, make run-examples) ----
# Every examples/*.c except the shared drawing helper examples/plot.c is one
# program, linked against the library; run-examples runs each (a few seconds
# apiece) and each writes its PNG into $(BUILD)/examples/out/.
EXAMPLE_SRC := $(filter-out examples/plot.c,$(wildcard examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

.PHONY: examples run-examples
examples: $(EXAMPLE_BIN)

$(BUILD)/examples/%: examples/%.c examples/plot.c examples/plot.h $(LIB)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) $< examples/plot.c $(LIB) $(LDLIBS) -o $@

run-examples: $(EXAMPLE_BIN)
	@mkdir -p $(BUILD)/examples/out
	@for e in $(EXAMPLE_BIN); do echo "== $$e"; $$e $(BUILD)/examples/out || exit 1; done

# ---- packaging: static and shared library, headers, pkg-config, the tool ----
# make install [PREFIX=/usr/local] [DESTDIR=]: headers go to
# $(PREFIX)/include/hgad/<layer>/*.h and are included as "tensor/tensor.h";
# `pkg-config --cflags --libs hgad` gives the flags.
PREFIX   ?= /usr/local
SHARED   := $(BUILD)/libhgad.so
VERSION  := 0.1.0
HEADERS  := $(foreach d,$(LAYERS),$(wildcard $(d)/*.h))

.PHONY: install shared
shared: $(SHARED)

$(SHARED): $(LIB_OBJ)
	$(LINK) -shared -Wl,-soname,libhgad.so.0 $^ $(LDLIBS) -o $@

$(BUILD)/hgad.pc: Makefile
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: hgad' 'Description: HGAD anomaly detection and its deep-learning core, in C' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}/hgad -fopenmp' \
	  'Libs: -L$${libdir} -lhgad -fopenmp' 'Libs.private: -lpng -ljpeg -lm' > $@

install: $(LIB) $(SHARED) $(HGAD) $(BUILD)/hgad.pc
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libhgad.a
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/libhgad.so.$(VERSION)
	ln -sf libhgad.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libhgad.so.0
	ln -sf libhgad.so.0 $(DESTDIR)$(PREFIX)/lib/libhgad.so
	install -m 644 $(BUILD)/hgad.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/hgad.pc
	install -m 755 $(HGAD) $(DESTDIR)$(PREFIX)/bin/hgad
	for h in $(HEADERS); do install -D -m 644 $$h $(DESTDIR)$(PREFIX)/include/hgad/$$h; done

# ---- data-parallel tests over MPI (make MPI=1 test-mpi) ----
# tests/mpi/ holds them so that the unit suite does not pick them up; each
# binary runs under `mpirun -np 1` and `-np 2` on this machine (loopback), and
# tests/mpi/test_mpi_cli.sh runs the hgad commands under mpirun.
MPI_TEST_SRC := $(wildcard tests/mpi/test_mpi_*.c)
MPI_TEST_BIN := $(MPI_TEST_SRC:tests/%.c=$(BUILD)/tests/%)
MPIRUN       ?= mpirun --allow-run-as-root --oversubscribe

.PHONY: test-mpi bench-mpi
test-mpi: $(MPI_TEST_BIN) $(HGAD)
	@if [ "$(MPI)" != 1 ]; then echo "test-mpi: run it as 'make MPI=1 test-mpi'"; exit 2; fi
	@MPIRUN="$(MPIRUN)" sh tests/mpi/run.sh $(BUILD) $(MPI_TEST_BIN)

# steps/s of data-parallel training at 1 and 2 ranks, 1 thread each
$(BUILD)/bench/mpi/bench_mpi_step: bench/mpi/bench_mpi_step.c $(LIB)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

bench-mpi: $(BUILD)/bench/mpi/bench_mpi_step
	@if [ "$(MPI)" != 1 ]; then echo "bench-mpi: run it as 'make MPI=1 bench-mpi'"; exit 2; fi
	@MPIRUN="$(MPIRUN)" sh bench/bench_mpi.sh $(BUILD)
