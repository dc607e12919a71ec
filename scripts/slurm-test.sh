#!/usr/bin/env bash
# slurm-test.sh - the batch tier on a real Slurm: a single-node cluster on loopback,
# configured and run from a temporary folder, gets the embedding array and the dependent
# merge from deploy/slurm/submit.sh; the merged report must be identical to what a
# single-process `facever eval` gives.
#
#   bash scripts/slurm-test.sh [FACEVER]          (make slurm-test)
#
# Installs nothing: it needs Debian's slurmctld, slurmd, slurm-client and munge (`make
# deps`). Prints SKIP and why, and exits 0, where they are missing or Slurm cannot start
# (a container without the privileges, say). Works on ../shared/lfw-dev when it is beside
# the checkout, else on the six test photos with a generated pairs file. Every daemon it
# started is stopped on exit; KEEP=1 keeps the temporary folder (logs, shards),
# SLURM_TEST_DATA=photos uses the test photos even where lfw-dev is present.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
facever=${1:-./facever}
facever=$(cd "$(dirname "$facever")" && pwd)/$(basename "$facever")
wait_limit=${SLURM_TEST_WAIT:-600}
t_start=$(date +%s)

say() { echo "slurm-test: $*"; }
skip() {
    echo "slurm-test: SKIP: $*"
    exit 0
}
# Echoes a command (to stderr, so what it prints stays its own), then runs it.
show() {
    echo "+ $*" >&2
    "$@"
}
elapsed() { echo $(($(date +%s) - $1)); }

[ -x "$facever" ] || { say "$facever is not built (make)"; exit 2; }
[ -r models/mobilefacenet.fvm ] || { say "models/ missing (make models)"; exit 2; }
for c in munged slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
    command -v "$c" >/dev/null 2>&1 ||
        skip "$c not found: install slurmctld slurmd slurm-client munge (make deps)"
done
if [ "$(id -u)" -ne 0 ]; then
    skip "slurmd must run as root to start jobs; run as root"
fi

tmp=$(mktemp -d /tmp/facever-slurm.XXXXXX)
# munged wants the folders above its socket searchable by everyone, and writable by
# nobody else.
chmod 755 "$tmp"
pids=()
failed=1
cleanup() {
    set +e
    if [ ${#pids[@]} -gt 0 ] && [ -n "${SLURM_CONF:-}" ]; then
        scancel --user="$(id -un)" >/dev/null 2>&1
        sleep 1
    fi
    # Daemons in reverse order of starting: slurmd, slurmctld, munged.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$failed" -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
        say "logs and shards kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TCP port nothing listens on.
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    return 1
}

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local limit=$1
    shift
    for _ in $(seq $((limit * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# ---- munge: its own key and socket; munged refuses keys and folders others can write ----
mkdir -p "$tmp/munge"
chmod 755 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
socket=$tmp/munge/munge.socket
munge_args=(--foreground --key-file="$tmp/munge/munge.key" --socket="$socket"
    --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log"
    --seed-file="$tmp/munge/munged.seed")
say "starting munged (own key and socket in $tmp/munge)"
echo "+ munged ${munge_args[*]} &"
munged "${munge_args[@]}" 2>"$tmp/munge/munged.err" &
pids+=($!)
if ! wait_for 10 test -S "$socket"; then
    # A parent folder others can write to: munged calls that insecure unless forced.
    if grep -qi "insecure\|permission" "$tmp/munge/munged.err"; then
        say "munged refused the permissions of a folder; retrying with --force:" \
            "$(grep -i "insecure\|permission" "$tmp/munge/munged.err" | head -n 1)"
        echo "+ munged --force ${munge_args[*]} &"
        munged --force "${munge_args[@]}" 2>"$tmp/munge/munged.err" &
        pids+=($!)
    fi
    wait_for 10 test -S "$socket" ||
        skip "munged did not start: $(grep -i 'error' "$tmp/munge/munged.err" | tail -n 3 | tr '\n' ' ')"
fi
unmunge_ok() { munge --socket="$socket" -n | unmunge --socket="$socket"; }
wait_for 5 unmunge_ok || skip "munge does not round-trip a credential on $socket"

# ---- Slurm: one node, this machine, on loopback ----
cpus=$(nproc)
ctld_port=$(free_port) || skip "no free TCP port"
slurmd_port=$(free_port) || skip "no free TCP port"
mkdir -p "$tmp/slurm/state" "$tmp/slurm/spool" "$tmp/slurm/log"
export SLURM_CONF=$tmp/slurm/slurm.conf
cat >"$SLURM_CONF" <<CONF
# Written by scripts/slurm-test.sh for one test run.
ClusterName=facever-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$tmp/slurm/state
SlurmdSpoolDir=$tmp/slurm/spool
SlurmctldPidFile=$tmp/slurm/slurmctld.pid
SlurmdPidFile=$tmp/slurm/slurmd.pid
SlurmctldLogFile=$tmp/slurm/log/slurmctld.log
SlurmdLogFile=$tmp/slurm/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
NodeName=fvnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=batch Nodes=fvnode Default=YES MaxTime=INFINITE State=UP
CONF
say "starting slurmctld (port $ctld_port) and slurmd (port $slurmd_port) with $SLURM_CONF"
echo "+ slurmctld -D -i -f $SLURM_CONF &"
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurm/log/slurmctld.out" 2>&1 &
pids+=($!)
wait_for 30 scontrol ping || skip "slurmctld did not start: $(tail -n 5 "$tmp/slurm/log/slurmctld.log" "$tmp/slurm/log/slurmctld.out" 2>/dev/null | tr '\n' ' ')"
echo "+ slurmd -D -N fvnode -f $SLURM_CONF &"
slurmd -D -N fvnode -f "$SLURM_CONF" >"$tmp/slurm/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { sinfo -h -N -o %T | grep -qx idle; }
wait_for 60 node_idle || skip "the node did not come up idle ($(sinfo -h -N -o '%T %E' 2>&1)): $(tail -n 5 "$tmp/slurm/log/slurmd.log" "$tmp/slurm/log/slurmd.out" 2>/dev/null | tr '\n' ' ')"
say "Slurm is up after $(elapsed "$t_start") s: $(sinfo -h -N -o '%N %T %c CPUs')"

# ---- the data: lfw-dev beside the checkout, else the test photos ----
if [ "${SLURM_TEST_DATA:-}" != photos ] && [ -r ../shared/lfw-dev/pairs.txt ]; then
    images=$(cd ../shared/lfw-dev/images && pwd)
    pairs=$(cd ../shared/lfw-dev && pwd)/pairs.txt
    shards=4
    eval_options=""
    say "data: lfw-dev ($pairs)"
else
    images=$tmp/photos
    pairs=$tmp/pairs.txt
    shards=3
    eval_options="--pca-dim 2"
    for n in 1 2 3 4 5 6; do
        person=p$(((n + 1) / 2))
        mkdir -p "$images/$person"
        ln -s "$repo/tests/data/sample$n.jpg" "$images/$person/${person}_000$((2 - n % 2)).jpg"
    done
    printf 'FOLDS 2\np1 1 2\np1 1 p2 1\np3 1 2\np2 2 p3 1\n' >"$pairs"
    # Different people paired as "same": the accuracy means nothing, the identity of the
    # two reports everything.
    say "data: the six test photos as 3 people, 2 folds ($pairs; ../shared/lfw-dev is absent)"
fi

# ---- single process ----
t0=$(date +%s)
# shellcheck disable=SC2086
show "$facever" eval --images "$images" --pairs "$pairs" --no-cache --quiet --threads "$cpus" \
    --report "$tmp/single.json" $eval_options >"$tmp/single.txt"
single_s=$(elapsed "$t0")
say "single-process eval: $single_s s"

# ---- the array and the dependent merge ----
t0=$(date +%s)
show deploy/slurm/submit.sh --images "$images" --pairs "$pairs" --out "$tmp/batch" \
    --shards "$shards" --cpus 1 --facever "$facever" --models "$repo/models" \
    --eval-options "$eval_options" --time-limit 20
read -r array merge <"$tmp/batch/logs/jobs"
finished() { [ -z "$(squeue -h -j "$array,$merge" -o %i 2>/dev/null)" ]; }
if ! wait_for "$wait_limit" finished; then
    squeue -j "$array,$merge" || true
    say "FAIL: the jobs did not finish within $wait_limit s"
    exit 1
fi
batch_s=$(elapsed "$t0")
state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort -u | tr '\n' ' '; }
say "jobs finished in $batch_s s: array $array: $(state "$array")merge $merge: $(state "$merge")"
if ! state "$merge" | grep -q COMPLETED; then
    tail -n 20 "$tmp"/batch/logs/*.out || true
    say "FAIL: the merge job did not complete"
    exit 1
fi
ls -l "$tmp/batch"

# ---- the same report ----
show cmp "$tmp/single.json" "$tmp/batch/report.json"
grep -v '^features: ' "$tmp/single.txt" >"$tmp/single.summary"
grep -v '^features: ' "$tmp/batch/summary.txt" >"$tmp/batch.summary"
show diff "$tmp/single.summary" "$tmp/batch.summary"
say "identical JSON report and summary:"
sed -n '2,12p' "$tmp/single.txt"

# NumPy reads the shards, if it is here (optional).
python=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' >/dev/null 2>&1; then
        python=$p
        break
    fi
done
if [ -n "$python" ]; then
    show "$python" - "$tmp/batch" <<'PY'
import glob, json, sys
import numpy as np
rows = 0
for meta in sorted(glob.glob(sys.argv[1] + "/shard-*-of-*.json")):
    m = json.load(open(meta))
    x = np.load(meta[:-5] + ".npy")
    names = open(meta[:-5] + ".names.txt").read().splitlines()
    assert x.dtype == np.float32 and x.shape == (m["shard"]["images"], m["features"]["dim"]), meta
    assert len(names) == x.shape[0] and np.isfinite(x).all(), meta
    rows += x.shape[0]
print(f"numpy.load: {rows} rows in {len(glob.glob(sys.argv[1] + '/shard-*.npy'))} shards")
PY
else
    say "python3 with numpy not found: the numpy.load check is skipped"
fi
failed=0
say "PASS in $(elapsed "$t_start") s (single-process eval $single_s s; Slurm array of $shards + merge $batch_s s)"
