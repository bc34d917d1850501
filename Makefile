# deploybench build.
#   make            build/deploybench (CUDA backend compiled in when nvcc is found)
#   make check      build and run every test; last line: "N passed, N failed, N skipped"
#   make SAN=1 check   the same under ASan + UBSan, in build-asan/ (CPU only)
#   make fuzz       libFuzzer targets (clang) in build-fuzz/
#   make CUDA=0     skip the CUDA backend even when nvcc is present (in build-nocuda/)

CC      ?= gcc
NVCC    ?= nvcc
SAN     ?= 0
CUDA    ?= auto

ifeq ($(CC),cc)
CC := gcc
endif

ifeq ($(SAN),1)
BUILD   ?= build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CUDA    := 0
OPT     ?= -O1
else ifeq ($(CUDA),0)
BUILD   ?= build-nocuda
SANFLAGS :=
OPT     ?= -O2
else
BUILD   ?= build
SANFLAGS :=
OPT     ?= -O2
endif

ifeq ($(CUDA),auto)
CUDA := $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
endif

PKGS     := libcjson libpcre2-8 libutf8proc zlib libcurl libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lcjson -lpcre2-8 -lutf8proc -lz -lcurl -lmicrohttpd)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation -Wvla
CFLAGS  += -std=c17 $(OPT) -g $(WARN) -D_GNU_SOURCE -Isrc -fopenmp -pthread $(PKG_CFLAGS) $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -fopenmp -pthread -ldl -lm $(SANFLAGS)

SRCS    := $(shell find src -name '*.c' | sort)
CU_SRCS := $(shell find src -name '*.cu' | sort)
OBJS    := $(SRCS:%.c=$(BUILD)/obj/%.o)

ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC))))
CFLAGS  += -DDPB_HAVE_CUDA=1 -I$(CUDA_HOME)/include
NVFLAGS := -std=c++17 -O3 -g -Isrc -DDPB_HAVE_CUDA=1 --Werror all-warnings -Xcompiler -Wall,-Wextra,-Wno-format-truncation -lineinfo
# sm_90 machine code, and compute_80 PTX so that the build still runs on sm_80+.  moe_wgmma.cu (wgmma, an
# sm_90a-only instruction) is built for sm_90a instead of sm_90; its compute_80 PTX holds stubs that the host
# code never launches (dpb_cuda_grpwg_available), so every other GPU runs the mma.sync kernels.
NVGEN   := -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
$(BUILD)/obj/src/backend/cuda/moe_wgmma.cu.o: NVGEN := -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=compute_80
OBJS    += $(CU_SRCS:%.cu=$(BUILD)/obj/%.cu.o)
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++ -lrt
endif

TEST_SRCS := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
LIB       := $(BUILD)/libdeploybench.a

.PHONY: all check test clean fuzz bench
all: $(BUILD)/deploybench $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	@echo '  NVCC    $<'
	@$(NVCC) $(NVFLAGS) $(NVGEN) -MMD -MP -c $< -o $@

DPB_COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/obj/src/core/version.o: FORCE
$(BUILD)/obj/src/core/version.o: CFLAGS += -DDPB_COMMIT='"$(DPB_COMMIT)"'
.PHONY: FORCE
FORCE:

$(LIB): $(OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/deploybench: $(BUILD)/obj/tools/deploybench.o $(LIB)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/t.h $(LIB)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS) -Itests $< $(LIB) -o $@ $(LDLIBS)

# CPU speed benchmarks (issue 4): build/bench/bench_kernels, build/bench/bench_engine.
BENCH_SRCS := $(wildcard bench/engine/*.c)
bench: $(BENCH_SRCS:bench/engine/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: bench/engine/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS) $< $(LIB) -o $@ $(LDLIBS)

# A fake NVML (tests/fake_nvml) that test_telemetry loads through DPB_NVML_LIBRARY.
$(BUILD)/tests/libfake_nvml.so: tests/fake_nvml/fake_nvml.c
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) -std=c17 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -shared -fvisibility=hidden $< -o $@ -lm
$(BUILD)/tests/test_telemetry: $(BUILD)/tests/libfake_nvml.so

check test: all
	@BUILD=$(BUILD) sh tests/run.sh

# libFuzzer targets: every parser has one (tests/fuzz/fuzz_*.c).
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := -std=c17 -O1 -g -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined \
               -fno-sanitize-recover=undefined -fopenmp -pthread
FUZZ_OBJS := $(SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
fuzz: $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_OBJS)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(PKG_LIBS) -fopenmp -pthread -ldl -lm

clean:
	rm -rf build build-asan build-nocuda build-fuzz

-include $(OBJS:.o=.d)
