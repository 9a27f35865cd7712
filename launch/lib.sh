# Sourced by the launch/ scripts: repository paths, logging, and the runtime environment.
# shellcheck shell=bash
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELORA="$REPO/.build/release/selora"

say() { echo "[$(basename "$0")] $*" >&2; }
die() { echo "[$(basename "$0")] error: $*" >&2; exit 1; }

# Open MPI refuses to run as root unless told; this machine kind runs everything as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# OpenBLAS idle threads otherwise spin (sched_yield) for ~2^28 cycles after every call and steal the cores
# our own element-wise passes run on: 4 makes them sleep almost at once (measured +15-25 % per training step).
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"

# The fast OpenBLAS kernel for jobs (demo, bench, train) — never for tests or CI, which run with the machine's
# own OPENBLAS_CORETYPE as it is.
# Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs and falls back to a generic or AVX2 kernel,
# 2-4x slower. On a CPU with AVX-512 (F, BW, DQ, VL) this selects SkylakeX unless SELORA_KEEP_CORETYPE=1.
# The choice is checked for correctness by `launch/bench`, which re-runs the real-weight reference comparison
# with it.
selora_fast_blas() {
    [[ "${SELORA_KEEP_CORETYPE:-0}" == 1 ]] && return 0
    local flags
    flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
    if [[ " $flags " == *" avx512f "* && " $flags " == *" avx512bw "* && " $flags " == *" avx512dq "* \
          && " $flags " == *" avx512vl "* ]]; then
        if [[ "${OPENBLAS_CORETYPE:-}" != SkylakeX && "${OPENBLAS_CORETYPE:-}" != Cooperlake \
              && "${OPENBLAS_CORETYPE:-}" != SapphireRapids ]]; then
            say "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} -> SkylakeX (AVX-512 kernel; SELORA_KEEP_CORETYPE=1 keeps yours)"
            export OPENBLAS_CORETYPE=SkylakeX
        fi
    elif [[ -z "${OPENBLAS_CORETYPE:-}" && " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
        export OPENBLAS_CORETYPE=Haswell
    fi
}

# Builds the release binary (incremental).
selora_build_release() {
    (cd "$REPO" && swift build -c release --product selora 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2) \
        || die "swift build -c release failed"
    [[ -x "$SELORA" ]] || die "swift build succeeded but $SELORA is missing"
}
