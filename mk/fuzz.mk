# fuzz.mk - libFuzzer harnesses for every parser of untrusted input, and the
# hostile-input run against a live server.
#
#   make fuzz                  build build-fuzz/fuzz_* with clang (libFuzzer + ASan + UBSan),
#                              and the HEIF/AVIF and WebP seeds into build-fuzz/seeds/
#   make fuzz-run SECONDS=60   run each harness for SECONDS on a copy of its seed corpus;
#                              fails on any crash, leak, timeout or sanitizer report
#   make hostile               thousands of malformed requests against ./facever serve
#
# The library sources are compiled again with clang into build-fuzz/ (coverage
# instrumentation and the sanitizers must be in every object the input reaches);
# gcc objects from build/ are never reused. The harnesses build with -Werror; the
# library sources do under gcc in the main build, and clang's extra warnings
# (e.g. -Wmissing-field-initializers on positional initialisers) do not stop this one.

FUZZ_CC       ?= clang
FUZZ_BUILD    := build-fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                 -fno-omit-frame-pointer
FUZZ_CFLAGS   := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -I. -pthread $(FUZZ_SAN)
FUZZ_LDLIBS   := -lmicrohttpd -lcjson -ljpeg -lpng -lheif -lwebp -lwebpdemux -llapacke \
                 -lopenblas -lm -pthread
FUZZ_NAMES    := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS     := $(foreach n,$(FUZZ_NAMES),$(FUZZ_BUILD)/fuzz_$(n))
FUZZ_LIB_SRCS := $(foreach m,api eval pipeline model,$(wildcard $(m)/*.c))
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(FUZZ_LIB_SRCS)) \
                 $(foreach i,$(KERNEL_ISAS),$(FUZZ_BUILD)/model/kern/kernels.$(i).o) \
                 $(FUZZ_BUILD)/gen/openapi_json.o $(FUZZ_BUILD)/gen/page_files.o
SECONDS       ?= 60
FUZZ_JOBS     ?= 1

FUZZ_SEEDS    := $(FUZZ_BUILD)/seeds/.stamp

.PHONY: fuzz fuzz-run hostile

fuzz: $(FUZZ_BINS) $(FUZZ_SEEDS)

# Seeds that only external encoders make (heif-enc, cwebp, img2webp) are made here,
# at set-up, rather than committed under tests/fuzz/corpus/; run.sh adds them to
# the committed ones.
$(FUZZ_SEEDS): tests/fuzz/make_format_seeds.sh | $(FUZZ_BUILD)/.gitignore
	@rm -rf $(FUZZ_BUILD)/seeds
	sh tests/fuzz/make_format_seeds.sh $(FUZZ_BUILD)/seeds
	@touch $@

# A .gitignore inside the folder keeps it out of `git status` on its own.
$(FUZZ_BUILD)/.gitignore:
	@mkdir -p $(FUZZ_BUILD)
	@echo '*' > $@

$(FUZZ_BUILD)/%.o: %.c | $(FUZZ_BUILD)/.gitignore
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# The kernels once per instruction set, as in the main build (Makefile: KERNEL_ISAS).
$(FUZZ_BUILD)/model/kern/kernels.%.o: model/kern/kernels.c | $(FUZZ_BUILD)/.gitignore
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA_FLAGS_$*) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# api/openapi.json as bytes, from the main build's generated source (Makefile).
$(FUZZ_BUILD)/gen/openapi_json.o: $(BUILD)/gen/openapi_json.c | $(FUZZ_BUILD)/.gitignore
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
# and the page's files (GET /, /app.js, /app.css)
$(FUZZ_BUILD)/gen/page_files.o: $(BUILD)/gen/page_files.c | $(FUZZ_BUILD)/.gitignore
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# One archive, so each harness links only the objects it reaches.
$(FUZZ_BUILD)/libfacever.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libfacever.a | $(FUZZ_BUILD)/.gitignore
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer -MMD -MP -MF $@.d -o $@ $< \
	    $(FUZZ_BUILD)/libfacever.a $(FUZZ_LDLIBS)

# fuzz_request loads the networks from models/ (`make models`; `make asan` or `make
# test` before this one in CI has made them).
fuzz-run: fuzz
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(SECONDS) $(FUZZ_JOBS) $(FUZZ_NAMES)

hostile: $(FACEVER) models/.stamp
	@FACEVER=./$(FACEVER) sh scripts/hostile.sh

-include $(wildcard $(FUZZ_BUILD)/*.d $(FUZZ_BUILD)/*/*.d)
