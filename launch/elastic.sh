# Elastic restarts for `launch/train --max-restarts N` (sourced by launch/train after it parsed its flags; uses
# its np, hostfile, max_restarts, dry, bin, extra and mpirun_cmd).
#
# A failed attempt (exit ≠ 0, ≠ 75) is followed by: a check of every host of the current hostfile through the
# launch agent mpirun uses (SELORA_PROBE_AGENT, else plm_rsh_agent, else ssh: `AGENT HOST true`),
# SELORA_PROBE_TIMEOUT seconds each (default 10); the hosts that do not
# answer are dropped (and named); then `selora train … --resume RUN` on the remaining slots, with the same global
# batch. Layout rule (B = --batch-size, the global batch; m = the first attempt's per-rank micro-batch
# B / (ranks · K)): ranks = the largest R ≤ min(first attempt's ranks, slots left) that divides B; then
# K = the smallest K ≥ 1 such that R·K divides B and B / (R·K) ≤ m (a rank never holds more images at once than
# before). A selora without --accumulate runs with K = 1 and a larger per-rank batch (said in the log).
# shellcheck shell=bash

# opt_value NAME ARGS… — the value of NAME X / NAME=X in a selora command line (the last one), or nothing.
opt_value() {
    local name="$1" v=""; shift
    while (($#)); do
        case "$1" in
            "$name") v="${2:-}"; shift ;;
            "$name="*) v="${1#*=}" ;;
        esac
        shift
    done
    printf '%s' "$v"
}

# strip_opts ARGS… — sets `stripped` to ARGS without --out / --resume / --accumulate and their values.
strip_opts() {
    stripped=()
    while (($#)); do
        case "$1" in
            --out|--resume|--accumulate) shift ;;
            --out=*|--resume=*|--accumulate=*) ;;
            *) stripped+=("$1") ;;
        esac
        shift
    done
}

# The highest step of metrics.jsonl's per-step records (event records left out), or -1.
metrics_max_step() {
    [[ -s "$1" ]] || { echo -1; return; }
    local s
    s="$(grep -v '"event"' "$1" | grep -oE '"step": ?[0-9]+' | grep -oE '[0-9]+$' | sort -n | tail -n 1 || true)"
    echo "${s:--1}"
}
# The step of the last {"event": "resume"} record, or nothing.
metrics_resume_step() {
    [[ -s "$1" ]] || return 0
    grep -E '"event": ?"resume"' "$1" | tail -n 1 | grep -oE '"step": ?[0-9]+' | grep -oE '[0-9]+$' || true
}
# The step of the newest checkpoint file of a run directory (steps done), or -1.
newest_checkpoint() {
    local f
    f="$(ls "$1/checkpoints" 2>/dev/null | grep -E '^step-[0-9]+\.safetensors$' | sort | tail -n 1 || true)"
    [[ -n "$f" ]] || { echo -1; return; }
    f="${f#step-}"; echo $((10#${f%.safetensors}))
}

# is_local HOST — this machine (no launch agent needed: mpirun starts its ranks itself).
is_local() {
    local h="$1"
    [[ "$h" == localhost || "$h" == 127.* || "$h" == ::1 || "$h" == "$(hostname)" || "$h" == "$(hostname -f 2>/dev/null)" ]] \
        && return 0
    ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | grep -qxF "$h"
}

# probe HOST — does it answer through the agent mpirun uses? (a short, bounded check; never prompts)
probe() {
    local h="$1" agent="" i t="${SELORA_PROBE_TIMEOUT:-10}"
    is_local "$h" && return 0
    for ((i = 0; i < ${#extra[@]}; i++)); do
        [[ "${extra[$i]}" == plm_rsh_agent ]] && agent="${extra[$((i + 1))]:-}"
    done
    agent="${SELORA_PROBE_AGENT:-${agent:-${OMPI_MCA_plm_rsh_agent:-}}}"
    if [[ -n "$agent" ]]; then
        # shellcheck disable=SC2086
        timeout "$t" ${agent%%:*} "$h" true </dev/null >/dev/null 2>&1
    else
        timeout "$t" ssh -o ConnectTimeout="$(( t > 2 ? t - 1 : 1 ))" -o BatchMode=yes \
            -o StrictHostKeyChecking=accept-new "$h" true </dev/null >/dev/null 2>&1
    fi
}

# Slots of a hostfile (Open MPI's `slots=N`; a line without it counts 1).
hostfile_slots() {
    awk '!/^[[:space:]]*(#|$)/ { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { sub(/^slots=/, "", $i); n = $i } s += n }
         END { print s + 0 }' "$1"
}

# layout SLOTS — sets `ranks` and `accum` by the rule at the top.
layout() {
    local slots="$1"
    ranks=$(( np0 < slots ? np0 : slots ))
    while (( batch % ranks )); do ranks=$((ranks - 1)); done
    accum=1
    if ((has_accumulate)); then
        while (( batch % (ranks * accum) || batch / (ranks * accum) > micro0 )); do accum=$((accum + 1)); done
    fi
}

elastic_supervise() {
    local run resumed=0
    run="$(opt_value --resume "$@")"
    if [[ -n "$run" ]]; then resumed=1; else run="$(opt_value --out "$@")"; fi
    [[ -n "$run" ]] || die "--max-restarts: the train command needs --out DIR (or --resume DIR): restarts resume from its checkpoints"
    batch="$(opt_value --batch-size "$@")"
    if [[ -z "$batch" ]]; then
        batch="$("$bin" train --help 2>&1 | tr '\n' ' ' | grep -oE -- '--batch-size <[^>]*> +Global batch size\. \(default: [0-9]+\)' \
                 | grep -oE '[0-9]+\)$' | tr -d ')' || true)"
        [[ -n "$batch" ]] || die "--max-restarts: cannot read the default --batch-size from '$bin train --help': pass --batch-size"
    fi
    [[ "$batch" =~ ^[1-9][0-9]*$ ]] || die "--batch-size $batch: expected a positive number"
    has_accumulate=0
    "$bin" train --help 2>&1 | grep -q -- '--accumulate' && has_accumulate=1
    local k0; k0="$(opt_value --accumulate "$@")"; k0="${k0:-1}"
    [[ "$k0" =~ ^[1-9][0-9]*$ ]] || die "--accumulate $k0: expected a positive number"
    np0="$np"
    micro0=$(( (batch + np0 * k0 - 1) / (np0 * k0) ))
    strip_opts "$@"; local base=("${stripped[@]}")

    local work; work="$(mktemp -d /tmp/selora-elastic.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    local hosts="" slots="$np"
    if [[ -n "$hostfile" ]]; then
        hosts="$work/hostfile"; grep -vE '^\s*(#|$)' "$hostfile" > "$hosts"
        slots="$(hostfile_slots "$hosts")"
    fi
    ranks="$np"; accum="$k0"
    local mode=--out; ((resumed)) && mode=--resume
    local restarts=0 early=0 rc progressed reached ckpt from lost_hosts line h attempt_args
    stop=0; child=0; interrupted=0
    on_signal() {
        interrupted=1
        if ((stop)); then
            say "second $1: ending the job now (SIGTERM to mpirun)"; kill -TERM "$child" 2>/dev/null || true
        else
            stop=1; say "$1: the ranks checkpoint at the next step and stop (SIGUSR1 to mpirun); a second signal ends the job at once"
            kill -USR1 "$child" 2>/dev/null || true
        fi
    }
    trap 'on_signal SIGTERM' TERM; trap 'on_signal SIGINT' INT; trap 'on_signal SIGUSR1' USR1

    while :; do
        attempt_args=("${base[@]}")
        attempt_args+=("$mode" "$run")
        if ((has_accumulate && (accum > 1 || k0 > 1))); then attempt_args+=(--accumulate "$accum"); fi
        mpirun_cmd "$ranks" "$hosts" "${attempt_args[@]}"
        if ((dry)); then printf '%q ' "${cmd[@]}"; echo; return 0; fi
        from="$(newest_checkpoint "$run")"; ((from >= 0)) || from=0
        touch "$work/started"; sleep 0.01
        say "attempt $((restarts + 1)) of at most $((max_restarts + 1)): $ranks rank(s), global batch $batch = $ranks × $((batch / (ranks * accum))) × $accum (ranks × per-rank batch × --accumulate)${SELORA_RESTART_REASON:+; reason: $SELORA_RESTART_REASON}"
        say "${cmd[*]}"
        set +e
        "${cmd[@]}" &
        child=$!
        while :; do interrupted=0; wait "$child"; rc=$?; ((interrupted)) || break; done
        set -e
        ((rc == 0)) && return 0
        if ((rc == 75)); then say "the job stopped cleanly (exit 75: checkpoint written); resume it with --resume $run (a scheduler requeues)"; exit 75; fi
        ((stop)) && { say "stopped by a signal: exit $rc, no restart"; exit "$rc"; }

        # Did this attempt get past its first step? (metrics.jsonl rewritten, with a step at or past its start)
        reached=-1; progressed=0
        if [[ "$run/metrics.jsonl" -nt "$work/started" ]]; then
            reached="$(metrics_max_step "$run/metrics.jsonl")"
            local rs; rs="$(metrics_resume_step "$run/metrics.jsonl")"
            ((reached >= ${rs:-$from})) && progressed=1
        fi
        if ((progressed)); then early=0; else early=$((early + 1)); fi
        ckpt="$(newest_checkpoint "$run")"
        SELORA_RESTART_REASON="job exit $rc"
        if [[ -n "$hosts" ]]; then
            lost_hosts=()
            : > "$work/alive"
            while read -r line; do
                h="${line%%[[:space:]]*}"
                if probe "$h"; then echo "$line" >> "$work/alive"; else lost_hosts+=("$h"); fi
            done < "$hosts"
            mv "$work/alive" "$hosts"
            slots="$(hostfile_slots "$hosts")"
            if ((${#lost_hosts[@]})); then
                SELORA_RESTART_REASON+="; hosts lost: ${lost_hosts[*]}"
                say "hosts that no longer answer (dropped): ${lost_hosts[*]}; left: $(awk '{print $1}' "$hosts" | tr '\n' ' ')(${slots} slots)"
            fi
        fi
        export SELORA_RESTART_REASON
        say "attempt $((restarts + 1)) failed: $SELORA_RESTART_REASON; $( ((progressed)) && echo "reached step $((reached + 1))" || echo "before its first step"); newest checkpoint: $( ((ckpt >= 0)) && echo "step $ckpt" || echo none)$( ((progressed && ckpt >= 0)) && echo "; steps lost: $((reached + 1 - ckpt))")"
        ((slots > 0)) || die "gave up: no host of the hostfile is left (${lost_hosts[*]} do not answer); the run's checkpoints are in $run/checkpoints"
        ((early < 2)) || die "gave up: two attempts in a row failed before their first step (last exit $rc): the weights, the data or a flag are likely bad — see the errors above"
        ((restarts < max_restarts)) || die "gave up after $max_restarts restart(s) (--max-restarts $max_restarts): last exit $rc; resume later with --resume $run"
        layout "$slots"
        restarts=$((restarts + 1))
        if ((ckpt < 0 && !resumed)); then
            # Nothing to resume from: start over in the same directory, keeping the failed attempt's metrics aside.
            if [[ -e "$run/metrics.jsonl" ]]; then mv "$run/metrics.jsonl" "$run/metrics.jsonl.attempt-$restarts"; fi
            mode=--out
            say "restart $restarts of $max_restarts: no checkpoint yet, starting over in $run on $ranks rank(s)"
        else
            mode=--resume
            say "restart $restarts of $max_restarts: resuming $run from its newest checkpoint that loads on $ranks rank(s)$( ((has_accumulate)) || ((batch / ranks <= micro0)) || echo " (this selora has no --accumulate: per-rank batch $micro0 → $((batch / ranks)))")"
        fi
    done
}
