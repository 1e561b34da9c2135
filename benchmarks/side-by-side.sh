#!/usr/bin/env bash
# Side-by-side timing of dse against the usual tools, on the same generated data.
#   clone: dse clone (durable, and --no-sync)  vs  qemu-img convert  vs  cp --sparse=always   (dynamic VHDX and VDI sources)
#   merge: dse merge  vs  qemu-img commit (the same data in a qcow2 overlay)
# Prints wall time (median of REPS runs), peak RSS and the ratios against the targets:
#   clone <= 0.8x qemu-img convert and <= 1.0x cp; merge <= 0.8x qemu-img commit; peak RSS < 150 MiB.
#
# dse clone is durable: it fsyncs the clone before renaming it into place, so a crash can never publish a clone
# whose data is not on disk. qemu-img convert (default cache mode) and cp return before their data reaches the
# disk. So the script also prints the like-for-like ratios, against the same tools made durable
# (qemu-img convert -t writeback flushes before exiting; cp is followed by sync of the copy), and the device's own
# floor: the time to write the same amount of data straight to disk (dd oflag=direct).
#
# Sizes in MiB (defaults are the target scenario: 2 GiB of data in an 8 GiB disk, 1 GiB merged):
#   VIRT_MIB=8192 DATA_MIB=2048 MERGE_MIB=1024 REPS=3 benchmarks/side-by-side.sh
# A quick smoke run:  VIRT_MIB=256 DATA_MIB=64 MERGE_MIB=32 REPS=1 benchmarks/side-by-side.sh
# The page cache is not dropped (that needs root and disturbs other work): every input is read once before timing,
# so all tools run warm, alike; and every timed run starts after a sync, so no tool pays for the previous one's
# writeback.
set -euo pipefail

VIRT_MIB=${VIRT_MIB:-8192}
DATA_MIB=${DATA_MIB:-2048}
MERGE_MIB=${MERGE_MIB:-1024}
REPS=${REPS:-3}
CHUNK_MIB=16
. "$(dirname "$0")/common.sh"
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-bench.XXXXXX")}
KEEP=${KEEP:-0}
trap '[ "$KEEP" = 1 ] || rm -rf "$WORK"' EXIT

require_tools side-by-side qemu-img dotnet /usr/bin/time
(( DATA_MIB <= VIRT_MIB && MERGE_MIB <= VIRT_MIB )) || { echo "side-by-side: DATA_MIB and MERGE_MIB must fit in VIRT_MIB" >&2; exit 2; }

# dse is measured as installed (README): the default publish, Native AOT, so start-up includes no runtime or JIT.
publish_dse "$WORK/dse-bin"
cd "$WORK"
echo "work folder: $WORK (virtual ${VIRT_MIB} MiB, data ${DATA_MIB} MiB, merge ${MERGE_MIB} MiB)"

spread_data data.raw "$VIRT_MIB" "$DATA_MIB" "$CHUNK_MIB"
qemu-img convert -O vhdx -o subformat=dynamic data.raw src.vhdx
qemu-img convert -O vdi data.raw src.vdi

warm() { cat "$@" > /dev/null; }

echo "clone:"
for fmt in vhdx vdi; do
  warm "src.$fmt"
  run "dse clone $fmt->$fmt"          "dse-clone.$fmt"  "${DSE[@]}" clone "src.$fmt" "dse-clone.$fmt"
  "${DSE[@]}" compare "src.$fmt" "dse-clone.$fmt" >/dev/null || { echo "dse clone of $fmt differs from its source"; exit 1; }
  run "dse clone --no-sync $fmt"      "dse-clone.$fmt"  "${DSE[@]}" clone --no-sync "src.$fmt" "dse-clone.$fmt"
  run "qemu-img convert $fmt->$fmt"   "qemu-clone.$fmt" qemu-img convert -O "$fmt" "src.$fmt" "qemu-clone.$fmt"
  run "qemu-img convert -t writeback $fmt" "qemu-clone.$fmt" qemu-img convert -t writeback -O "$fmt" "src.$fmt" "qemu-clone.$fmt"
  run "cp --sparse=always $fmt"       "cp-clone.$fmt"   cp --sparse=always "src.$fmt" "cp-clone.$fmt"
  run "cp + sync $fmt"                "cp-clone.$fmt"   sh -c 'cp --sparse=always "$1" "$2" && sync "$2"' sh "src.$fmt" "cp-clone.$fmt"
  rm -f "dse-clone.$fmt" "qemu-clone.$fmt" "cp-clone.$fmt"
done
run "device floor: dd oflag=direct"   floor.raw dd if=src.vdi of=floor.raw bs=4M oflag=direct status=none
rm -f floor.raw

echo "merge:"
head -c $((CHUNK_MIB << 20)) /dev/urandom > chunk2.bin
truncate -s "${VIRT_MIB}M" merge.raw
mpieces=$(( MERGE_MIB / CHUNK_MIB )); (( mpieces > 0 )) || mpieces=1
mstride=$(( VIRT_MIB / mpieces / CHUNK_MIB * CHUNK_MIB )); (( mstride >= CHUNK_MIB )) || mstride=$CHUNK_MIB
"${DSE[@]}" clone src.vdi base.vdi >/dev/null
chmod 600 base.vdi # private: its sole linked clone merges back without 'dse unseal' (README, Reliability)
"${DSE[@]}" clone --linked base.vdi top.vdi >/dev/null
for ((i = 0; i < mpieces; i++)); do
  off=$(( (i * mstride + mstride / 2) / CHUNK_MIB * CHUNK_MIB ))
  dd if=chunk2.bin of=merge.raw bs=1M seek="$off" conv=notrunc status=none
  printf '%08d' "$i" | dd of=merge.raw bs=1 seek=$(( off << 20 )) conv=notrunc status=none
  dd if=merge.raw bs=1M skip="$off" count=$CHUNK_MIB status=none > piece.bin
  "${DSE[@]}" write top.vdi --offset "${off}M" --input piece.bin >/dev/null
done
qemu-img convert -O qcow2 data.raw base.qcow2
# The overlay holds exactly the merge data: convert the merged view with the base as backing file (-B).
cp --sparse=always data.raw merged-view.raw
for ((i = 0; i < mpieces; i++)); do
  off=$(( (i * mstride + mstride / 2) / CHUNK_MIB * CHUNK_MIB ))
  dd if=merge.raw of=merged-view.raw bs=1M skip="$off" seek="$off" count=$CHUNK_MIB conv=notrunc status=none
done
qemu-img convert -O qcow2 -B base.qcow2 -F qcow2 merged-view.raw top.qcow2
warm base.vdi top.vdi base.qcow2 top.qcow2
"${DSE[@]}" clone top.vdi expected.vdi >/dev/null
# The linked clone sealed base.vdi; merging into it is the user's explicit choice.
"${DSE[@]}" unseal base.vdi >/dev/null
# A merge consumes its input, so it runs once.
REPS=1
run "dse merge (vdi)"   none "${DSE[@]}" merge top.vdi
run "qemu-img commit"   none qemu-img commit top.qcow2
"${DSE[@]}" compare base.vdi expected.vdi >/dev/null || { echo "dse merge result differs"; exit 1; }
qemu-img compare -f qcow2 -F raw base.qcow2 merged-view.raw >/dev/null || { echo "qemu-img commit result differs"; exit 1; }

echo "ratios (target):"
for fmt in vhdx vdi; do
  echo "  clone $fmt / qemu-img convert: $(ratio "${SECS[dse clone $fmt->$fmt]}" "${SECS[qemu-img convert $fmt->$fmt]}")  (<= 0.80)"
  echo "  clone $fmt / cp --sparse:      $(ratio "${SECS[dse clone $fmt->$fmt]}" "${SECS[cp --sparse=always $fmt]}")  (<= 1.00)"
done
echo "--no-sync (like cp and qemu-img convert, data left in the page cache):"
for fmt in vhdx vdi; do
  echo "  clone --no-sync $fmt / qemu-img convert: $(ratio "${SECS[dse clone --no-sync $fmt]}" "${SECS[qemu-img convert $fmt->$fmt]}")  (<= 0.80)"
  echo "  clone --no-sync $fmt / cp --sparse:      $(ratio "${SECS[dse clone --no-sync $fmt]}" "${SECS[cp --sparse=always $fmt]}")  (<= 1.00)"
done
echo "best runs only (each tool at its fastest; buffered writers vary most with the page cache):"
for fmt in vhdx vdi; do
  echo "  clone $fmt / qemu-img convert: $(ratio "${BEST[dse clone $fmt->$fmt]}" "${BEST[qemu-img convert $fmt->$fmt]}")"
  echo "  clone $fmt / cp --sparse:      $(ratio "${BEST[dse clone $fmt->$fmt]}" "${BEST[cp --sparse=always $fmt]}")"
done
echo "like for like (both sides durable):"
for fmt in vhdx vdi; do
  echo "  clone $fmt / qemu-img convert -t writeback: $(ratio "${SECS[dse clone $fmt->$fmt]}" "${SECS[qemu-img convert -t writeback $fmt]}")"
  echo "  clone $fmt / cp + sync:                     $(ratio "${SECS[dse clone $fmt->$fmt]}" "${SECS[cp + sync $fmt]}")"
done
echo "  device floor for ${DATA_MIB} MiB (dd oflag=direct): ${SECS[device floor: dd oflag=direct]} s"
echo "  merge / qemu-img commit:       $(ratio "${SECS[dse merge (vdi)]}" "${SECS[qemu-img commit]}")  (<= 0.80)"
peak=0
for k in "${!RSS[@]}"; do
  [[ $k == dse* ]] && (( RSS[$k] > peak )) && peak=${RSS[$k]}
done
echo "  dse peak RSS:                  $(( peak / 1024 )) MiB  (< 150)"
