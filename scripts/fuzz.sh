#!/usr/bin/env bash
# Fuzzes pglite-client: runs each cargo-fuzz target of crates/pglite-client/fuzz for a
# bounded time under memory limits and fails if any of them crashes, leaks memory
# beyond the limits, or hangs on one input.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  default 60 (or $FUZZ_SECONDS)
#   TARGET              default: every target (`cargo fuzz list`)
# Environment:
#   FUZZ_RSS_MB     libFuzzer -rss_limit_mb (default 2048)
#   FUZZ_MALLOC_MB  libFuzzer -malloc_limit_mb: the largest single allocation (default 256)
#   FUZZ_TIMEOUT    libFuzzer -timeout, seconds for one input (default 10)
#   FUZZ_SANITIZER  cargo fuzz --sanitizer (default address; `none` runs faster)
#   CARGO_TARGET_DIR  builds go to $CARGO_TARGET_DIR/fuzz (else the fuzz dir's target/)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz uses nightly-only rustc
# flags (-Zsanitizer, sanitizer coverage); on a stable toolchain this script sets
# RUSTC_BOOTSTRAP=1 to allow them.
#
# New corpus entries go to crates/pglite-client/fuzz/corpus/<target> (not committed);
# the committed seeds (recorded from a real server by the harness's `record-seeds`)
# are in crates/pglite-client/fuzz/seeds/<target>. A crash leaves its input in
# crates/pglite-client/fuzz/artifacts/<target>/ and the log in .../artifacts/<target>.log.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_dir=$root/crates/pglite-client/fuzz
seconds=${1:-${FUZZ_SECONDS:-60}}
[[ $# -gt 0 ]] && shift
rss_mb=${FUZZ_RSS_MB:-2048}
malloc_mb=${FUZZ_MALLOC_MB:-256}
timeout_s=${FUZZ_TIMEOUT:-10}
sanitizer=${FUZZ_SANITIZER:-address}
target_dir=${CARGO_TARGET_DIR:-$fuzz_dir/target}
[[ -n ${CARGO_TARGET_DIR:-} ]] && target_dir=$CARGO_TARGET_DIR/fuzz

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1

fuzz=(cargo fuzz)
opts=(--fuzz-dir "$fuzz_dir" --target-dir "$target_dir" --sanitizer "$sanitizer" --debug-assertions)

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$fuzz_dir")
fi

# The largest input per target: a whole recorded session is ~4 KB.
max_len() {
    case $1 in
        backend_messages) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

for t in "${targets[@]}"; do
    echo "== building $t (sanitizer: $sanitizer)"
    "${fuzz[@]}" build "${opts[@]}" "$t"
done

# User CPU seconds of this shell's finished children (the machine may be busy, so
# executions per CPU second say more than per wall-clock second).
# (`times` must run in this shell, not in a command substitution.)
times_file=$(mktemp)
trap 'rm -f "$times_file" "$times_file.before" "$times_file.after"' EXIT
children_cpu() {
    local line m s
    times >"$times_file"
    line=$(tail -1 "$times_file")
    line=${line%% *}
    m=${line%%m*}
    s=${line#*m}
    s=${s%s}
    awk -v m="$m" -v s="$s" 'BEGIN { printf "%.3f", m * 60 + s }'
}

host=$(rustc -vV | sed -n 's/^host: //p')
coverage_log=$fuzz_dir/artifacts/coverage.log
mkdir -p "$fuzz_dir/artifacts"
: >"$coverage_log"

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus=$fuzz_dir/corpus/$t
    seeds=$fuzz_dir/seeds/$t
    mkdir -p "$corpus" "$fuzz_dir/artifacts"
    log=$fuzz_dir/artifacts/$t.log
    dirs=("$corpus")
    [[ -d $seeds ]] && dirs+=("$seeds")
    echo "== $t: ${seconds}s, rss ≤ ${rss_mb} MB, one allocation ≤ ${malloc_mb} MB, ≤ ${timeout_s}s per input"
    children_cpu >"$times_file.before"
    cpu_before=$(cat "$times_file.before")
    set +e
    "${fuzz[@]}" run "${opts[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
        -timeout="$timeout_s" -max_len="$(max_len "$t")" -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    set -e
    children_cpu >"$times_file.after"
    cpu=$(awk -v a="$(cat "$times_file.after")" -v b="$cpu_before" 'BEGIN { printf "%.3f", a - b }')
    edges=$(grep -o 'inline 8-bit counters): [0-9]*' "$log" | head -1 | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    stat() { grep -oE "stat::$1: *[0-9]+" "$log" | grep -oE '[0-9]+$' || true; }
    runs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    rss=$(stat peak_rss_mb)
    per_cpu=?
    [[ -n $runs ]] && per_cpu=$(awk -v r="$runs" -v c="$cpu" 'BEGIN { printf "%d", r / (c + 0.001) }')
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        result="FAILED (exit $status; see $log)"
        failed+=("$t")
        grep -E 'ERROR|panicked|SUMMARY|Failing input|artifacts/' "$log" | head -8 >&2 || true
    fi
    # Which functions of the crate the corpus reaches (libFuzzer's -print_coverage).
    if [[ $status -eq 0 ]]; then
        "$target_dir/$host/release/$t" -runs=0 -print_coverage=1 "${dirs[@]}" 2>&1 |
            grep -E '^(UN)?COVERED_FUNC:.*crates/pglite-client/src/' >>"$coverage_log" || true
    fi
    summary+=("$(printf '%-17s %9s runs %7s/s %7s/CPU-s  cov %5s of %5s edges  ft %6s  corpus %5s  rss %5s MB  %s' \
        "$t" "${runs:-?}" "${rate:-?}" "$per_cpu" "${cov:-?}" "${edges:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result")")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ -s $coverage_log ]]; then
    echo
    echo "== pglite-client functions reached by the corpora (all targets; functions the"
    echo "   optimiser inlined count as part of their caller; edges include ASan's checks)"
    awk '{
        loc = $NF; sub(/.*crates\/pglite-client\//, "", loc)
        split(loc, parts, ":"); file = parts[1]
        split($5, e, "/"); covered = e[1] + 0; total = e[2] + 0
        all[loc] = file
        if ($1 == "COVERED_FUNC:") hit[loc] = 1
        if (covered > best[loc]) best[loc] = covered
        if (total > size[loc]) size[loc] = total
    } END {
        for (l in all) {
            f = all[l]; n[f]++; if (l in hit) c[f]++
            ec[f] += best[l]; et[f] += size[l]
            N++; if (l in hit) C++; EC += best[l]; ET += size[l]
        }
        for (f in n) printf "%-24s functions %3d of %3d   edges %5d of %5d\n", f, c[f], n[f], ec[f], et[f] | "sort"
        close("sort")
        printf "%-24s functions %3d of %3d   edges %5d of %5d\n", "total", C, N, EC, ET
    }' "$coverage_log"
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
