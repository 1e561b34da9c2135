#!/usr/bin/env bash
# The durable clone against the device, like for like. ../shared/bench/clone-modes.sh compares `dse clone` (durable:
# its data is on disk, through the device's write cache, before it returns) with `dd oflag=direct` of the same 2 GiB,
# which returns with the last of its data still in the device's volatile write cache. This script times both of
# those and a third side, the same dd followed by one `sync --data` of its output (an fdatasync: the device cache
# flush that the durable clone also ends with), alternating runs, a sync before each, medians.
# Run from the project root:  benchmarks/durable-floor.sh   (REPS=5 for more runs)
set -euo pipefail
. "$(dirname "$0")/common.sh"
REPS=${REPS:-3}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-floor.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
require_tools durable-floor qemu-img dd sync python3
publish_dse "$WORK/dse-bin"

# The scenario of clone-modes.sh: 2 GiB of random data in 64 MiB pieces, one every 128 MiB of an 8 GiB dynamic VHDX.
head -c 67108864 /dev/urandom > "$WORK/chunk"; truncate -s 8G "$WORK/src.raw"
for i in $(seq 0 2 63); do dd if="$WORK/chunk" of="$WORK/src.raw" bs=64M seek="$i" conv=notrunc status=none; done
qemu-img convert -f raw -O vhdx "$WORK/src.raw" "$WORK/s.vhdx"; rm -f "$WORK/src.raw"; sync

dd_direct() { for i in $(seq 32); do dd if="$WORK/chunk" of="$WORK/o.raw" bs=4M oflag=direct conv=notrunc seek=$(( (i - 1) * 16 )) status=none; done; }
dd_synced() { dd_direct && sync --data "$WORK/o.raw"; }
timed() { local s e; sync; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "durable-floor: $* failed" >&2; exit 1; }; e=$(date +%s.%N); python3 -c "print(round($e - $s, 3))"; }

D=(); F=(); S=()
for ((r = 0; r < REPS; r++)); do
  rm -f "$WORK"/o.*; D+=("$(timed "${DSE[@]}" clone "$WORK/s.vhdx" "$WORK/o.vhdx")")
  rm -f "$WORK"/o.*; F+=("$(timed dd_direct)")
  rm -f "$WORK"/o.*; S+=("$(timed dd_synced)")
done
rm -f "$WORK"/o.*
d=$(printf '%s\n' "${D[@]}" | median); f=$(printf '%s\n' "${F[@]}" | median); s=$(printf '%s\n' "${S[@]}" | median)
echo "dse clone (durable):                  $d s   (runs: ${D[*]})"
echo "dd oflag=direct (cache not flushed):  $f s   (runs: ${F[*]})"
echo "dd oflag=direct + sync --data:        $s s   (runs: ${S[*]})"
echo "durable clone / dd oflag=direct:                $(ratio "$d" "$f")  (shared target <= 1.1)"
echo "durable clone / dd oflag=direct + sync --data:  $(ratio "$d" "$s")  (like for like)"
