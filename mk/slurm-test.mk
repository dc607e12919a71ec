# slurm-test.mk - the batch tier on a real single-node Slurm (not part of `make test`).
#
#   make slurm-test              munged, slurmctld and slurmd from a temporary folder on
#                                loopback; deploy/slurm/submit.sh's array and dependent
#                                merge against a single-process `facever eval`
#   make slurm-test SLURM_TEST_WAIT=1200   a longer bound on the jobs (default 600 s)
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge (`make deps`) and root; says
# SKIP and exits 0 where Slurm cannot start. The work is in scripts/slurm-test.sh.

.PHONY: slurm-test
slurm-test: $(FACEVER) models/.stamp tests/data/.stamp
	bash scripts/slurm-test.sh ./$(FACEVER)
