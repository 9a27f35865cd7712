#!/usr/bin/env bash
# launch/slurm under a real single-node Slurm (Debian slurm-wlm 22.05: slurmctld + slurmd + munge, started here in
# the background with a minimal slurm.conf of its own — no systemd, no accounting), then everything stopped and
# removed. Each check prints PASS/FAIL; the last line is "slurm: N passed, M failed".
#   1. nodelist → hostfile: launch/slurm --dry-run with SLURM_JOB_NODELIST=n[01-03], SLURM_TASKS_PER_NODE=2(x2),1.
#   2. submission: sbatch launch/slurm -- train … runs 2 ranks on the node.
#   3. preemption the way the time limit does it (--signal=B:TERM@60, here `scancel --batch --signal=TERM`): the ranks
#      get SIGUSR1, the script requeues the job, it starts again and resumes from the run's checkpoint.
#   4. an external `scontrol requeue` (every process signalled at once): the job starts again and resumes.
#   5. the job completes: all steps in metrics.jsonl, summary.json, Restarts=2, steps lost ≤ the checkpoint interval.
# Needs root; installs slurmctld, slurmd, slurm-client and munge from Debian when they are missing.
# Usage: Tests/slurm/run.sh   (not part of launch/test: see the README, "Slurm")
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "PASS $*"; }
ko() { fail=$((fail + 1)); echo "FAIL $*"; }
die() { echo "Tests/slurm/run.sh: error: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (slurmd, munged)"
export SELORA_KEEP_CORETYPE=1
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurmctld slurmd slurm-client munge (Debian)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge; } >/dev/null 2>&1 \
        || die "apt-get install slurmctld slurmd slurm-client munge failed"
fi
(cd "$REPO" && swift build -c release --product selora 2>&1 | grep -E 'error|warning: unre' ) ; [[ -x "$REPO/.build/release/selora" ]] || die "no release build"

T="$(mktemp -d /tmp/selora-slurm-test.XXXXXX)"
pids=()
cleanup() {
    local p
    [[ -n "${SLURM_CONF:-}" && -f "$SLURM_CONF" ]] && scancel --full --quiet --user root 2>/dev/null
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]+"${pids[@]}"}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

# The cluster: one node (this machine), own munge socket and key, own ports, state under $T. cred_expire also
# sets how long a requeued job waits before it may start again (default 120 s).
node="$(hostname -s)"
dd if=/dev/urandom of="$T/munge.key" bs=1024 count=1 status=none; chmod 400 "$T/munge.key"
munged --force --socket="$T/munge.sock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" \
       --log-file="$T/munged.log" --seed-file="$T/munged.seed" || die "munged did not start (see $T/munged.log)"
pids+=("$(cat "$T/munged.pid")")
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$T/state" "$T/spool"
cat > "$T/slurm.conf" <<CONF
ClusterName=selora-test
SlurmctldHost=$node
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock,cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=5
MpiDefault=none
NodeName=$node CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$T/slurm.conf"
# 1. nodelist → hostfile (no daemon needed: scontrol show hostnames expands locally)
out="$(SLURM_JOB_ID=1 SLURM_JOB_NODELIST='n[01-03]' SLURM_TASKS_PER_NODE='2(x2),1' SELORA_REPO="$REPO" \
       "$REPO/launch/slurm" --dry-run -- train --out "$T/dry" 2>&1)"
if grep -q "^n01 slots=2$" <<<"$out" && grep -q "^n02 slots=2$" <<<"$out" && grep -q "^n03 slots=1$" <<<"$out" \
   && grep -q -- "-np 5 --hostfile" <<<"$out"; then ok "nodelist n[01-03] × tasks 2(x2),1 → hostfile n01:2 n02:2 n03:1, 5 ranks"
else ko "nodelist → hostfile"; echo "$out" | tail -8; fi

slurmctld -D -i -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 & pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 & pids+=($!)
for _ in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo -h -o %T 2>/dev/null | grep -q idle || { tail "$T"/slurm*.log; die "slurmctld/slurmd did not come up (logs above)"; }
ok "slurmctld + slurmd + munged up ($(sinfo -h -o '%N %c CPUs %T'))"

steps() { grep -v '"event"' "$T/run/metrics.jsonl" 2>/dev/null | grep -c '"step"' || true; }
wait_steps() {  # wait_steps N SECONDS — until metrics.jsonl has N step records
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (( $(steps) >= $1 )) && return 0
        [[ "$(state)" =~ ^(FAILED|COMPLETED|CANCELLED|TIMEOUT)$ ]] && return 1
        sleep 0.1
    done
    return 1
}
state() { scontrol show job "$jid" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }
restarts() { scontrol show job "$jid" 2>/dev/null | grep -oE 'Restarts=[0-9]+' | cut -d= -f2; }

# 2. submission
JOB=(train --image-size 28 --train-count 64 --test-count 32 --steps 60 --batch-size 8 --rank 4 --penalty-start 4
     --score-lr 0.05 --check-every 3 --checkpoint-every 5 --log-level warning --out "$T/run")
start=$(date +%s)
jid="$(SELORA_REPO="$REPO" sbatch --parsable --chdir "$REPO" -N1 -n2 -o "$T/job.out" "$REPO/launch/slurm" -- "${JOB[@]}")" \
    || die "sbatch failed"
if wait_steps 12 120; then ok "sbatch launch/slurm: job $jid running on 2 ranks (step $(steps))"
else ko "job $jid did not reach step 12 (state $(state))"; tail -20 "$T/job.out"; echo "slurm: $pass passed, $fail failed"; exit 1; fi

# 3. preemption through the batch script (what --signal=B:TERM@60 does at the time limit)
before=$(steps)
scancel --batch --signal=TERM "$jid"
for _ in $(seq 300); do [[ "$(restarts)" == 1 ]] && break; sleep 0.1; done
if grep -q "requeueing job $jid" "$T/job.out" && [[ "$(restarts)" == 1 ]]; then
    ok "scancel --batch --signal=TERM: ranks signalled, job requeued by the script ($(grep -oE 'stopped \(exit [0-9]+[^)]*\)' "$T/job.out" | head -1))"
else ko "SIGTERM to the batch script did not requeue (Restarts=$(restarts), state $(state))"; tail -20 "$T/job.out"; fi
t0=$(date +%s)
if wait_steps $((before + 6)) 240 && grep -q "resuming $T/run" "$T/job.out"; then
    ok "requeued job started again after $(( $(date +%s) - t0 )) s and resumed from its checkpoint (step $(steps))"
else ko "requeued job did not resume (state $(state))"; tail -20 "$T/job.out"; fi

# 4. an external requeue
scontrol requeue "$jid" || ko "scontrol requeue $jid failed"
for _ in $(seq 300); do [[ "$(restarts)" == 2 ]] && break; sleep 0.1; done
[[ "$(restarts)" == 2 ]] && ok "scontrol requeue: job requeued (Restarts=2)" || ko "scontrol requeue (Restarts=$(restarts))"

# 5. completion
for _ in $(seq 2400); do [[ "$(state)" == COMPLETED || "$(state)" == FAILED ]] && break; sleep 0.1; done
n=$(steps)
if [[ "$(state)" == COMPLETED && -s "$T/run/summary.json" && $n -eq 60 ]]; then
    ok "job $jid COMPLETED after $(restarts) requeues: 60 steps in metrics.jsonl, summary.json written; $(( $(date +%s) - start )) s in all"
else ko "job $jid ended $(state) with $n steps"; tail -30 "$T/job.out"; fi
echo "--- job output (job.out) ---"; grep -E '^\[(launch/slurm|train)\]' "$T/job.out" | grep -v '\] mpirun' | sed 's/^/    /'
echo "slurm: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
