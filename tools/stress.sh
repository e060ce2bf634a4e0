#!/usr/bin/env bash
# Runs the whole test suite (`deno task test`) N times and counts the runs that exited non-zero
# or printed a crash message (glibc heap corruption, abort, panic, fatal signal; see
# tools/crash_scan.sh), even when every test passed. Prints one row per run and a summary.
#
# Usage: tools/stress.sh N
# Logs go to $STRESS_LOG_DIR (default: a new temporary directory), one file per run.
# Exits 0 when every run was clean, 1 when any run was not, 2 on bad usage.
set -uo pipefail
cd "$(dirname "$0")/.."

n="${1:-}"
if [[ ! "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: tools/stress.sh N (N = how many times to run the suite, a positive integer)" >&2
  exit 2
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export NO_COLOR=1
# glibc writes heap-corruption messages to the terminal unless told to use stderr (the log).
export LIBC_FATAL_STDERR_=1
dir="${STRESS_LOG_DIR:-$(mktemp -d -t stress.XXXXXX)}"
mkdir -p "$dir"
echo "stress: ${n} runs of 'deno task test'; logs in ${dir}"

nonzero=0
crashed=0
bad=0
printf '%-4s | %-4s | %-7s | %-6s | %-6s | %s\n' run exit seconds passed failed "crash message"
printf '%s\n' '-----|------|---------|--------|--------|--------------'
for i in $(seq 1 "$n"); do
  log="${dir}/run-${i}.log"
  start=$SECONDS
  deno task test >"$log" 2>&1
  rc=$?
  secs=$((SECONDS - start))
  summary="$(grep -aE '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)"
  passed="$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$summary")"
  failed="$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$summary")"
  crash="$(tools/crash_scan.sh "$log" | head -1 | cut -d: -f2- | cut -c1-60)"
  [[ $rc -ne 0 ]] && nonzero=$((nonzero + 1))
  [[ -n "$crash" ]] && crashed=$((crashed + 1))
  [[ $rc -ne 0 || -n "$crash" ]] && bad=$((bad + 1))
  printf '%-4s | %-4s | %-7s | %-6s | %-6s | %s\n' "$i" "$rc" "$secs" "${passed:--}" \
    "${failed:--}" "${crash:--}"
done

echo
echo "| runs | non-zero exit | crash message | clean |"
echo "|---|---|---|---|"
echo "| ${n} | ${nonzero} | ${crashed} | $((n - bad)) |"
[[ $bad -eq 0 ]]
