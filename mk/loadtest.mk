# loadtest.mk - a bounded load test of the running server.
#
#   make loadtest                      30 s of POST /v1/verify at concurrency 8 (wrk)
#   make loadtest LOAD_SECONDS=60 LOAD_CONNECTIONS=16 LOAD_SERVE_ARGS="--threads 4"
#   make loadtest LOAD_IMAGES=phone    two 12 MP phone photos per request instead
#
# Builds ./facever and a small helper (tests/load/make_faces.c) that cuts two
# 250x250 faces out of tests/data/sample1.jpg (LOAD_IMAGES=faces, the default;
# LOAD_IMAGES=phone sends two of tests/data/phone/*.jpg, made by
# mk/phone-photos.mk, about 2.6 MB of JSON a request), starts `facever serve --port 0`,
# drives it with wrk, prints requests/s, p50/p99 latency, non-2xx and socket
# errors and the server's RSS every few seconds, then stops it with SIGTERM.
# The work is in scripts/loadtest.sh. Needs wrk (Debian: apt-get install wrk).

LOAD_SECONDS     ?= 30
LOAD_CONNECTIONS ?= 8
LOAD_THREADS     ?= 2
LOAD_SERVE_ARGS  ?=
LOAD_IMAGES      ?= faces
LOAD_FACES       := $(BUILD)/tests/load/make_faces
LOAD_IMAGES_DEPS_phone := tests/data/phone/.stamp

.PHONY: loadtest

$(LOAD_FACES): tests/load/make_faces.c $(BUILD)/libapi.a $(BUILD)/libpipeline.a $(BUILD)/libmodel.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libapi.a $(BUILD)/libpipeline.a $(BUILD)/libmodel.a $(LDLIBS)

loadtest: $(FACEVER) $(LOAD_FACES) models/.stamp tests/data/.stamp $(LOAD_IMAGES_DEPS_$(LOAD_IMAGES))
	@command -v wrk >/dev/null 2>&1 || { \
	    echo "make loadtest needs wrk; install it with: sudo apt-get install -y wrk" >&2; exit 2; }
	FACEVER=./$(FACEVER) MAKE_FACES=$(LOAD_FACES) LOAD_SECONDS=$(LOAD_SECONDS) \
	    LOAD_CONNECTIONS=$(LOAD_CONNECTIONS) LOAD_THREADS=$(LOAD_THREADS) \
	    LOAD_SERVE_ARGS="$(LOAD_SERVE_ARGS)" LOAD_IMAGES=$(LOAD_IMAGES) sh scripts/loadtest.sh
