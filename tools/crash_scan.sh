#!/usr/bin/env bash
# Scans a test log for messages that mean the process crashed or corrupted its heap, even when
# every test passed: glibc heap checks (e.g. "corrupted size vs. prev_size in fastbins",
# "double free or corruption", "free(): invalid pointer", "malloc(): ..."), aborts, Rust or
# Deno panics, and fatal signals.
#
# Usage: tools/crash_scan.sh LOG
# Prints each matching line as "LINE_NUMBER:TEXT" and exits 1 when there is one, 0 when the log
# is clean, 2 when LOG cannot be read.
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: tools/crash_scan.sh LOG (a file with a test run's stdout and stderr)" >&2
  exit 2
fi
log="$1"
if [[ ! -r "$log" ]]; then
  echo "crash_scan: cannot read '${log}'; pass the file the test output was written to" >&2
  exit 2
fi

# One alternative per message family. glibc's heap checks all end in "(): <what>" or start
# with "corrupted"/"double free"; the shell or the runtime names the fatal signals.
pattern='corrupted (size|double-linked|top size|unsorted|fastbin|prev_size)'
pattern+='|double free'
pattern+='|(free|malloc|realloc|calloc|munmap_chunk|malloc_consolidate|_int_malloc|_int_free'
pattern+='|tcache_thread_shutdown)\(\): '
pattern+='|^Aborted|Aborted \(core dumped\)|SIGABRT'
pattern+='|panicked at|Deno has panicked|fatal runtime error'
pattern+='|Segmentation fault|SIGSEGV|Bus error|Illegal instruction'

if grep -anE "$pattern" "$log"; then
  exit 1
fi
exit 0
