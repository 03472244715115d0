# raftconf build.
#
#   make                 build bin/raftconf-server (and everything the tests need)
#   make test            build and run every suite, then again under ASan+UBSan
#   make test-fast       run every suite once, no sanitizer build
#   make test-asan       only the sanitizer pass
#   make sim SEEDS=N STEPS=M   a longer simulator campaign
#   make fuzz            build the libFuzzer targets (clang), not run in CI
#
# BUILD=dir puts every object and binary under dir (default build/), so several builds
# (plain, sanitizer, a helper's scratch build) never share object files.

BUILD ?= build
SAN ?= 0
CC ?= cc
OPT ?= -O2

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
        -Wimplicit-fallthrough -Werror
CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -Isrc -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS := $(EXTRA_LDFLAGS)
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

LIBS := -levent -lleveldb -lxxhash -ljansson -lpcre2-8 -lcrypto -lm
TEST_LIBS := -lcriterion -lhiredis

RESP_SRC := $(wildcard src/resp/*.c)
PST_SRC  := $(wildcard src/persist/*.c)
RAFT_SRC := $(wildcard src/raft/*.c)
NS_SRC   := $(wildcard src/ns/*.c)
SVC_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
RESP_OBJ := $(call obj,$(RESP_SRC))
PST_OBJ  := $(call obj,$(PST_SRC)) $(BUILD)/src/rc.o
RAFT_OBJ := $(call obj,$(RAFT_SRC))
NS_OBJ   := $(call obj,$(NS_SRC))
SVC_OBJ  := $(call obj,$(SVC_SRC))
LIB_OBJ  := $(RESP_OBJ) $(PST_OBJ) $(RAFT_OBJ) $(NS_OBJ) $(SVC_OBJ)
LIB_OBJ  := $(sort $(LIB_OBJ))

SERVER := $(BUILD)/raftconf-server

# Unit tests: tests/unit/test_<name>.c -> $(BUILD)/tests/test_<name>. Module suites link
# only their module, so a half-written module elsewhere cannot break them.
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# Integration tests drive the real binary: tests/integration/test_*.c
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(patsubst tests/integration/%.c,$(BUILD)/itests/%,$(ITEST_SRC))
ITEST_HELPER_SRC := $(wildcard tests/integration/helper*.c)
ITEST_HELPER_OBJ := $(call obj,$(ITEST_HELPER_SRC))
# Cluster tests start real 3-5 node clusters: tests/cluster/test_*.c -> $(BUILD)/ctests/,
# with their helper (tests/cluster/cluster.c) and the fault-injecting proxy they drive.
CTEST_SRC := $(wildcard tests/cluster/test_*.c)
CTEST_BIN := $(patsubst tests/cluster/%.c,$(BUILD)/ctests/%,$(CTEST_SRC))
CTEST_HELPER_OBJ := $(call obj,$(filter-out $(CTEST_SRC),$(wildcard tests/cluster/*.c)))
PROXY := $(BUILD)/tcpproxy
# The deterministic cluster simulator: tests/fault/sim/*.c -> $(BUILD)/raftsim
SIM_SRC := $(wildcard tests/fault/sim/*.c)
SIM_OBJ := $(call obj,$(SIM_SRC))
SIM := $(BUILD)/raftsim
# The nemesis suite's checker and workload (tests/fault/lincheck*.c, workload*.c); the
# checker's own criterion suite goes under $(BUILD)/tests/ so run-tests.sh runs it.
LINCHECK_OBJ := $(call obj,$(filter-out tests/fault/lincheck_main.c,\
                  $(wildcard tests/fault/lincheck*.c)))
WORKLOAD_OBJ := $(call obj,$(wildcard tests/fault/workload*.c))
LINCHECK := $(BUILD)/lincheck
WORKLOAD := $(BUILD)/nemesis-workload
LINCHECK_TEST := $(BUILD)/tests/test_lincheck
# The nemesis suite's helpers (tests/fault/nemesis/): an NFQUEUE delay/reorder program and
# an LD_PRELOAD disk-fault shim (built without the sanitizers: it is preloaded into the
# plain server).
NEMDELAY := $(BUILD)/nemdelay
NEMFS := $(BUILD)/nemfs.so

.PHONY: all test test-fast test-asan sim fuzz clean check-purity nemesis

all: $(SERVER) bin/raftconf-server $(UNIT_BIN) $(ITEST_BIN) $(if $(SIM_SRC),$(SIM)) \
     $(CTEST_BIN) $(PROXY) $(NEMDELAY) $(NEMFS) $(LINCHECK) $(WORKLOAD) $(LINCHECK_TEST)

bin/raftconf-server: $(SERVER)
	@mkdir -p bin
	cp $< $@

$(SERVER): $(BUILD)/src/main.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Which objects each unit suite links.
define unit_objs
$(if $(filter test_resp%,$(1)),$(RESP_OBJ),\
$(if $(filter test_pst%,$(1)),$(PST_OBJ),\
$(if $(filter test_raft%,$(1)),$(RAFT_OBJ),\
$(if $(filter test_ns%,$(1)),$(NS_OBJ) $(PST_OBJ),\
$(LIB_OBJ)))))
endef

.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $$(call unit_objs,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

$(BUILD)/itests/%: $(BUILD)/tests/integration/%.o $(ITEST_HELPER_OBJ) $(BUILD)/src/rc.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

$(BUILD)/ctests/%: $(BUILD)/tests/cluster/%.o $(CTEST_HELPER_OBJ) $(ITEST_HELPER_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) -lpthread

$(PROXY): $(BUILD)/tests/fault/tcpproxy.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

$(NEMDELAY): $(BUILD)/tests/fault/nemesis/nemdelay.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lnetfilter_queue -lnfnetlink

$(NEMFS): tests/fault/nemesis/nemfs.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fsanitize% -fno-sanitize% -MMD -MP,$(CFLAGS)) -fPIC -shared \
	  -o $@ $< -ldl -lpthread

$(LINCHECK): $(BUILD)/tests/fault/lincheck_main.o $(LINCHECK_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -ljansson

$(WORKLOAD): $(WORKLOAD_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lhiredis -ljansson -lpthread

$(LINCHECK_TEST): $(BUILD)/tests/fault/test_lincheck.o $(LINCHECK_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -ljansson -lcriterion

$(SIM): $(SIM_OBJ) $(RAFT_OBJ) $(filter $(BUILD)/src/raft_wire.o,$(SVC_OBJ))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# src/raft and src/ns must not reach for clocks, randomness, sockets, files, threads,
# libevent or LevelDB (see ../shared/STYLE.md).
check-purity: $(RAFT_OBJ) $(NS_OBJ)
	@scripts/check-purity.sh $(RAFT_OBJ) -- $(NS_OBJ)

SEEDS ?= 1000
STEPS ?= 2000
sim: $(SIM)
	$(SIM) --seeds $(SEEDS) --steps $(STEPS)

# The nemesis matrix on real clusters in network namespaces (root; see docs/testing.md):
#   make nemesis DURATION=120 [SEED=7] [SCENARIOS="partition kill"]
DURATION ?= 120
nemesis: all
	RAFTCONF_BUILD=$(abspath $(BUILD)) tests/fault/nemesis/matrix.sh --duration-s $(DURATION) \
	  $(if $(SEED),--seed $(SEED)) $(if $(SCENARIOS),--scenarios "$(SCENARIOS)")

test-fast: all check-purity
	BUILD=$(BUILD) scripts/run-tests.sh

test-asan:
	$(MAKE) BUILD=build-asan SAN=1 OPT=-O1 all
	BUILD=build-asan SAN=1 scripts/run-tests.sh

# The sanitizer pass runs after the plain one, never beside it (shared CPU and ports).
test:
	$(MAKE) test-fast
	$(MAKE) test-asan

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
	  $(patsubst fuzz/%.c,build-fuzz/%,$(wildcard fuzz/fuzz_*.c))

build-fuzz/fuzz_%: fuzz/fuzz_%.c $(LIB_OBJ)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -Isrc -fsanitize=fuzzer,address,undefined \
	  -o $@ $^ $(LIBS)

clean:
	rm -rf build build-asan build-fuzz bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmarks (docs/performance.md): raftconf next to Redis and etcd in one run, and a CPU
# profile of a leader under load. Not part of `make test`.
.PHONY: bench bench-profile
bench:
	bench/run.sh
bench-profile:
	bench/profile.sh
