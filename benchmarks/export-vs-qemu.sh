#!/usr/bin/env bash
# Side-by-side: `dse export` against `qemu-img convert -O raw` on the same VHDX files (issue 2 acceptance).
#   sparse: 128 GiB virtual, 1 GiB of data in 1 MiB runs spread over the disk (a golden image):  dse <= 0.33x qemu-img
#   dense:  4 GiB virtual, 1 MiB of data in every 4 MiB:                                           dse <= 1.0x  qemu-img
# Usage: benchmarks/export-vs-qemu.sh [WORKDIR]   (needs qemu-img and qemu-io; about 3 GiB of free space)
set -euo pipefail
. "$(dirname "$0")/common.sh"
work=${1:-$(mktemp -d /tmp/dse-export-bench.XXXXXX)}
mkdir -p "$work"
runs=${RUNS:-3}

publish_dse "$work/dse-bin"
dse() { "${DSE[@]}" "$@"; }

make_image() { # name size stride count
  local img=$work/$1.vhdx
  rm -f "$img"
  qemu-img create -q -f vhdx -o subformat=dynamic "$img" "$2"
  local args=() off=0 i
  for ((i = 0; i < $4; i++)); do args+=(-c "write -P $(( (i % 250) + 1 )) $off 1M"); off=$((off + $3)); done
  qemu-io -f vhdx "${args[@]}" "$img" >/dev/null
  echo "$img"
}

time_cmd() { # prints the median wall time in seconds of "$@" over $runs runs (after one warm-up)
  local out=$work/out.raw t
  rm -f "$out"; "$@" >/dev/null 2>&1; rm -f "$out"
  for ((r = 0; r < runs; r++)); do
    local s=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    local e=$(date +%s.%N)
    rm -f "$out"
    echo "$e - $s" | bc -l
  done | median
}

report() { # name image target
  local img=$2 out=$work/out.raw
  local q d
  q=$(time_cmd qemu-img convert -f vhdx -O raw "$img" "$out")
  d=$(time_cmd dse export "$img" "$out")
  # Same bytes out of both tools, or the timing means nothing.
  qemu-img convert -f vhdx -O raw "$img" "$work/q.raw"; dse export "$img" "$work/d.raw"
  cmp -s "$work/q.raw" "$work/d.raw" || { echo "$1: outputs differ!"; exit 1; }
  rm -f "$work/q.raw" "$work/d.raw"
  local ratio; ratio=$(echo "$d / $q" | bc -l)
  local verdict; verdict=$(echo "$ratio <= $3" | bc -l)
  printf '%-8s qemu-img %8.3fs   dse %8.3fs   ratio %.3f (target <= %s) %s\n' "$1" "$q" "$d" "$ratio" "$3" \
    "$([ "$verdict" = 1 ] && echo PASS || echo FAIL)"
}

sparse=$(make_image sparse 128G $((128 << 20)) 1024)
dense=$(make_image dense 4G $((4 << 20)) 1024)
report sparse "$sparse" 0.33
report dense "$dense" 1.0
[ -n "${1:-}" ] || rm -rf "$work"
