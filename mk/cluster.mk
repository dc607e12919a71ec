# cluster.mk - replicas behind nginx, on loopback (scripts/cluster-test.sh).
#
#   make cluster-test                  two replicas + Debian's nginx: scaling, nginx's cost,
#                                      a rolling restart and a crash under load, metrics
#   make cluster-test CLUSTER_SECONDS=15 CLUSTER_ROUNDS=3
#
# Needs nginx, wrk and curl (make deps installs them); prints SKIP without them unless
# CLUSTER_REQUIRED=1. About two minutes.

CLUSTER_SECONDS  ?= 8
CLUSTER_ROUNDS   ?= 2
CLUSTER_REQUIRED ?= 0

.PHONY: cluster-test

cluster-test: $(FACEVER) $(BUILD)/tests/load/make_faces models/.stamp tests/data/.stamp
	FACEVER=./$(FACEVER) MAKE_FACES=$(BUILD)/tests/load/make_faces CLUSTER_SECONDS=$(CLUSTER_SECONDS) \
	    CLUSTER_ROUNDS=$(CLUSTER_ROUNDS) CLUSTER_REQUIRED=$(CLUSTER_REQUIRED) \
	    timeout 600 sh scripts/cluster-test.sh
