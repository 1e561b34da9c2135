#!/usr/bin/env bash
# Start-up of the common verbs as scripts call them (as published: Native AOT): --version, info,
# create, clone, export, write and merge on a small VHDX (64 MiB, 1 MiB of data), 15 runs each after 3 warm-ups with
# hyperfine. Prints median and fastest wall time and CPU (user + sys, the figure that other load disturbs least).
# No target: it shows what each verb pays before its own work. Usage: benchmarks/startup-verbs.sh
#   DSE=/path/to/dse        measure that binary instead of publishing this checkout
#   BASE=/path/to/other/dse also measure another binary (before/after), its lines marked "base"
#   RUNS=30                 runs per command
set -euo pipefail
. "$(dirname "$0")/common.sh"
require_tools startup-verbs.sh hyperfine python3
WORK=$(mktemp -d -t dse-startup-verbs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [ -z "${DSE:-}" ]; then
  publish_dse "$WORK/dse-bin"
  DSE=${DSE[*]}
fi

measure() { # measure LABEL BINARY
  local label=$1 b=$2 w="$WORK/$1"
  mkdir -p "$w"
  $b create "$w/a.vhdx" --size 64M >/dev/null
  head -c 1048576 /dev/urandom >"$w/in.bin"
  $b write "$w/a.vhdx" --offset 0 --input "$w/in.bin" >/dev/null
  $b create "$w/base.vhdx" --size 64M >/dev/null
  hyperfine -N -w 3 -r "${RUNS:-15}" --export-json "$w/t.json" \
    -n version --prepare true "$b --version" \
    -n info --prepare true "$b info $w/a.vhdx" \
    -n create --prepare "rm -f $w/n.vhdx" "$b create $w/n.vhdx --size 64M" \
    -n clone --prepare "rm -f $w/o.vhdx" "$b clone $w/a.vhdx $w/o.vhdx" \
    -n export --prepare "rm -f $w/o.raw" "$b export $w/a.vhdx $w/o.raw" \
    -n write --prepare true "$b write $w/a.vhdx --offset 0 --input $w/in.bin" \
    -n merge --prepare "bash -c \"rm -f $w/c.vhdx; $b unseal $w/base.vhdx >/dev/null 2>&1; $b create $w/c.vhdx --parent $w/base.vhdx >/dev/null\"" \
      "$b merge $w/c.vhdx --force" >/dev/null
  python3 - "$w/t.json" "$label" <<'PY'
import json, statistics, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = r["times"]
    print(f'{sys.argv[2]:5} {r["command"]:8} median {statistics.median(t)*1000:6.1f} ms  fastest {min(t)*1000:6.1f} ms  '
          f'CPU {(r["user"] + r["system"])*1000:6.1f} ms (user {r["user"]*1000:5.1f})')
PY
}

measure dse "$DSE"
if [ -n "${BASE:-}" ]; then measure base "$BASE"; fi
