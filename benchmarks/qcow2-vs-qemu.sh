#!/usr/bin/env bash
# Side-by-side for qcow2 (issue 12): the same generated data, dse against qemu-img, like for like:
#   export: dse export --no-sync SRC.qcow2 OUT.raw  vs  qemu-img convert -O raw (both leave the data in the page cache)
#           dse export SRC.qcow2 OUT.raw            vs  qemu-img convert -t writeback -O raw (both fsync before returning)
#                                                                                   target: dse <= 1.0x
#   clone:  dse clone --no-sync SRC DST.qcow2       vs  qemu-img convert -O qcow2 (its default cache mode, unsafe)
#           dse clone SRC DST.qcow2                 vs  qemu-img convert -t writeback -O qcow2 (both durable)
#           from a qcow2 and from a VHDX source                                     target: dse <= 0.8x
# The commands of one comparison run in alternation (dse, qemu-img, dse, ...), REPS times each, so a shared machine's
# load falls on both alike; medians, the ratio of medians and peak RSS are printed.
# Sizes in MiB (defaults: 2 GiB of data in an 8 GiB disk):
#   VIRT_MIB=8192 DATA_MIB=2048 REPS=5 benchmarks/qcow2-vs-qemu.sh
# A quick smoke run:  VIRT_MIB=512 DATA_MIB=128 REPS=1 benchmarks/qcow2-vs-qemu.sh
set -euo pipefail

VIRT_MIB=${VIRT_MIB:-8192}
DATA_MIB=${DATA_MIB:-2048}
REPS=${REPS:-5}
CHUNK_MIB=16
. "$(dirname "$0")/common.sh"
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-qcow2-bench.XXXXXX")}
KEEP=${KEEP:-0}
trap '[ "$KEEP" = 1 ] || rm -rf "$WORK"' EXIT

require_tools qcow2-vs-qemu qemu-img dotnet /usr/bin/time
publish_dse "$WORK/dse-bin"
cd "$WORK"
echo "work folder: $WORK (virtual ${VIRT_MIB} MiB, data ${DATA_MIB} MiB, load: $(cut -d' ' -f1-3 /proc/loadavg))"

spread_data data.raw "$VIRT_MIB" "$DATA_MIB" "$CHUNK_MIB"
qemu-img convert -O qcow2 data.raw src.qcow2
qemu-img convert -O vhdx -o subformat=dynamic data.raw src.vhdx

# pair LABEL OUTPUT TARGET "DSE ARGS" "QEMU ARGS": REPS alternating runs of dse and qemu-img writing OUTPUT, then
# their medians and the ratio against TARGET (run from common.sh with REPS=1 records each run).
pair() {
  local label=$1 out=$2 target=$3 dse_args=$4 qemu_args=$5 rep d=() q=() dr=0 qr=0
  local reps=$REPS
  for ((rep = 0; rep < reps; rep++)); do
    REPS=1 run "dse $label" "$out" "${DSE[@]}" $dse_args > /dev/null
    d+=("${SECS[dse $label]}"); (( ${RSS[dse $label]} > dr )) && dr=${RSS[dse $label]}
    REPS=1 run "qemu-img $label" "$out" qemu-img $qemu_args > /dev/null
    q+=("${SECS[qemu-img $label]}"); (( ${RSS[qemu-img $label]} > qr )) && qr=${RSS[qemu-img $label]}
  done
  REPS=$reps
  local dm qm r
  dm=$(printf '%s\n' "${d[@]}" | median); qm=$(printf '%s\n' "${q[@]}" | median)
  r=$(ratio "$dm" "$qm")
  printf "  %-34s dse %6.2f s (%6d KiB)  qemu-img %6.2f s (%6d KiB)  ratio %s (target <= %s) %s\n" \
    "$label" "$dm" "$dr" "$qm" "$qr" "$r" "$target" "$(verdict "$r" "$target")"
  printf "    runs dse: %s | qemu-img: %s\n" "${d[*]}" "${q[*]}"
  rm -f "$out"
}

cat src.qcow2 src.vhdx > /dev/null
echo "export (qcow2 -> raw):"
qemu-img convert -O raw src.qcow2 q.raw; "${DSE[@]}" export src.qcow2 d.raw > /dev/null
cmp -s q.raw d.raw || { echo "export: outputs differ!"; exit 1; }
rm -f q.raw d.raw
pair "export --no-sync / convert" out.raw 1.0 "export --no-sync src.qcow2 out.raw" "convert -O raw src.qcow2 out.raw"
pair "export / convert -t writeback" out.raw 1.0 "export src.qcow2 out.raw" "convert -t writeback -O raw src.qcow2 out.raw"

for src in qcow2 vhdx; do
  echo "clone ($src -> qcow2):"
  "${DSE[@]}" clone "src.$src" d.qcow2 > /dev/null
  "${DSE[@]}" compare "src.$src" d.qcow2 >/dev/null || { echo "clone: dse's clone differs from its source"; exit 1; }
  qemu-img check -q d.qcow2 || { echo "clone: qemu-img check failed on dse's clone"; exit 1; }
  rm -f d.qcow2
  pair "clone --no-sync / convert" out.qcow2 0.8 "clone --no-sync src.$src out.qcow2" "convert -O qcow2 src.$src out.qcow2"
  pair "clone / convert -t writeback" out.qcow2 0.8 "clone src.$src out.qcow2" "convert -t writeback -O qcow2 src.$src out.qcow2"
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
