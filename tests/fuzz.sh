#!/usr/bin/env bash
# Long runs of the mutation fuzzers: images (tests/DiskSnapshotEngine.Tests/Reliability/MutationFuzzTests.cs) and the
# NBD server's client sessions (tests/DiskSnapshotEngine.Tests/Nbd/NbdMutationFuzzTests.cs); each gets the time given.
# Usage: tests/fuzz.sh [--minutes N] [--seed S] [--failures DIR]
# Prints, per fuzzer, the number of cases run and of failures; each failing input is saved in DIR (default ./fuzz-failures)
# with a .txt beside it naming the failure and the edits.
set -euo pipefail
minutes=5 seed="" failures="$PWD/fuzz-failures"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --failures) failures=$2; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
DSE_FUZZ_SECONDS=$((minutes * 60)) DSE_FUZZ_CASES=2000000000 DSE_FUZZ_SEED=$seed \
DSE_FUZZ_FAILURES=$failures DSE_FUZZ_SUMMARY=$summary \
  dotnet test "$here/tests/DiskSnapshotEngine.Tests" -c Release --filter "FullyQualifiedName~MutationFuzzTests" \
  --logger "console;verbosity=minimal" >/dev/null || status=$?
if [ -s "$summary" ]; then
  cat "$summary"
else
  echo "fuzz.sh: the fuzz test did not report (build or runner failure; rerun dotnet test to see why)" >&2
  exit 2
fi
[ "$status" -eq 0 ] || echo "failing inputs saved in $failures"
exit "$status"
