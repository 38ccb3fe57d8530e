# HGAD in C: top-level build.
#   make            library, hgad command, tests and benchmarks binaries
#   make test       check dependencies, build and run the unit suite
#   make bench      benchmarks (OpenBLAS and PyTorch compared in the same run)
#   make asan       unit suite under AddressSanitizer + UBSan
#   make valgrind   unit suite under valgrind memcheck (leak-free)
#   make demo       the main job on built-in synthetic data (no downloads)
#   make clean

CC      ?= cc
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fopenmp -I. -fPIC
LDLIBS  += -lpng -ljpeg -lm
LDFLAGS += -fopenmp
BUILD   ?= build

LAYERS  := tensor autograd nn models datasets
LIB_SRC := $(foreach d,$(LAYERS),$(wildcard $(d)/*.c))
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

# Files named *_avx2.c hold AVX2/FMA kernels chosen at run time; only they get the flags.
$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -mavx2 -mfma -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(HGAD): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(LIB) -lcmocka $(LDLIBS) -o $@

test: check-deps $(TEST_BIN) $(HGAD)
	@sh tests/run.sh $(BUILD) $(TEST_BIN)

# Benchmarks link OpenBLAS for comparison only; the library never does.
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) -lopenblas $(LDLIBS) -o $@

bench: check-deps check-bench-deps $(BENCH_BIN)
	@sh bench/run.sh $(BUILD) $(BENCH_BIN)

check-bench-deps:
	@sh tools/check-deps.sh bench

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  CFLAGS_EXTRA= CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fopenmp -fsanitize=address,undefined" test

valgrind: check-deps $(TEST_BIN)
	@HG_VALGRIND=1 sh tests/run.sh $(BUILD) $(TEST_BIN)

clean:
	rm -rf build build-asan build-fuzz

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

# Installs the Debian packages needed to build and test (run as root or with sudo).
deps:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends \
	  gcc make libc6-dev libgomp1 libpng-dev libjpeg62-turbo-dev libcmocka-dev
