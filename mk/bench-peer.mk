# bench-peer.mk - facever against two established CPU engines, XNNPACK and ONNX Runtime,
# on the same networks, input, batch (1) and thread count (1).
#
#   make bench-peer                                 mobilefacenet onet pnet@250x250, 3 rounds
#   make bench-peer NETS="onet pnet@150x150" ROUNDS=5
#   make bench-peer FV_CPU=avx2                     facever at another CPU level (peers unchanged)
#
# Builds tests/peer/nets (facever's timing, the peers' protocol) and runs
# scripts/bench-peer.sh, which alternates it with the peers' ../shared/peer/run.sh
# (PEER_RUN to point elsewhere) round by round and prints a table of medians and
# ratios. Without run.sh it says so and succeeds. The first peer run installs Debian
# packages and builds XNNPACK into ~/.cache/facever-peer (a few minutes).

BENCH_PEER_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/peer/*.c))
BENCH_PEER_TOOL := $(BUILD)/tests/peer/nets
ROUNDS          ?= 3
NETS            ?= mobilefacenet onet pnet@250x250
PEER_RUN        ?= ../shared/peer/run.sh

.PHONY: bench-peer

$(BENCH_PEER_TOOL): $(BENCH_PEER_OBJS) $(BUILD)/libmodel.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(BENCH_PEER_OBJS) $(BUILD)/libmodel.a $(LDLIBS)

# The networks are fetched only when there are peers to compare with.
bench-peer: $(BENCH_PEER_TOOL) $(if $(wildcard $(PEER_RUN)),models/.stamp)
	@NETS_TOOL=./$(BENCH_PEER_TOOL) NETS="$(NETS)" ROUNDS="$(ROUNDS)" PEER_RUN="$(PEER_RUN)" \
	    bash scripts/bench-peer.sh
