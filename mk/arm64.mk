# arm64.mk - the model library and its tests, cross-built for aarch64 and run under
# qemu-user, so the portable paths (no AVX, no MXCSR) and the aarch64 kernels are tested
# on an x86 machine.
#
#   make test-arm64                      install what is missing (as root), cross-build
#                                        build-arm64/tests/model-unit, run it under qemu
#   make test-arm64 ARM64_TIMEOUT=900    seconds each run under qemu may take
#
# Only the model library (model/*.c and the per-ISA kernel objects the Makefile picks
# for the compiler's target) and the tests in MODEL_TEST_SRCS are built; not the HTTP
# server, not the image pipeline. The work is in scripts/test-arm64.sh: it runs
# `$(MAKE) BUILD=build-arm64 CC=aarch64-linux-gnu-gcc build-arm64/tests/model-unit`,
# so every object comes from the Makefile's rules, with its -Werror. The tests read the
# models/ the x86 ./facever imported (.fvm files are little-endian on both).

ARM64_BUILD   ?= build-arm64
ARM64_CC      ?= aarch64-linux-gnu-gcc
ARM64_TIMEOUT ?= 600
# The levels below NEON whose network tests run again, as `make test` does on x86.
ARM64_LOWER_LEVELS ?= generic

# The model library's own tests; `make test` links them into tests/unit with the rest.
# MODEL_TEST_CFLAGS / MODEL_TEST_LDFLAGS say where a cross build finds Criterion.
MODEL_TEST_SRCS    := tests/test_gemm.c tests/test_ops.c tests/test_reference.c \
                      tests/test_model_file.c tests/test_tflite.c tests/test_train.c
MODEL_TEST_OBJS    := $(patsubst %.c,$(BUILD)/%.o,$(MODEL_TEST_SRCS))
MODEL_TEST_CFLAGS  ?=
MODEL_TEST_LDFLAGS ?=
MODEL_LDLIBS       := -lcjson -lopenblas -lm

.PHONY: test-arm64 clean-arm64

$(MODEL_TEST_OBJS): CFLAGS += $(MODEL_TEST_CFLAGS)

$(BUILD)/tests/model-unit: $(MODEL_TEST_OBJS) $(BUILD)/libmodel.a
	$(CC) $(LDFLAGS) $(MODEL_TEST_LDFLAGS) -o $@ $(MODEL_TEST_OBJS) $(BUILD)/libmodel.a \
	    $(MODEL_LDLIBS) -lcriterion

# `+` passes the jobserver to the script's sub-make; under `make -n` the script (which
# may run apt-get) is only printed.
test-arm64: models/.stamp
	+@$(if $(findstring n,$(firstword -$(MAKEFLAGS))),echo) \
	    ARM64_BUILD=$(ARM64_BUILD) ARM64_CC=$(ARM64_CC) ARM64_TIMEOUT=$(ARM64_TIMEOUT) \
	    ARM64_LEVEL_TESTS=$(LEVEL_TESTS) ARM64_LOWER_LEVELS="$(ARM64_LOWER_LEVELS)" \
	    MAKE="$(MAKE)" sh scripts/test-arm64.sh

clean: clean-arm64
clean-arm64:
	rm -rf $(ARM64_BUILD)
