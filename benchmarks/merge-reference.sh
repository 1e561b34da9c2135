#!/usr/bin/env bash
# The merge target against the device. ../shared/bench/merge-vs-commit.sh asks `dse merge` of 1 GiB into new parent
# blocks to take at most 0.8x the time of `qemu-img commit` of the same data. Both must put the child's 1 GiB on disk
# (commit ends with an fdatasync) and both give back the child's space (dse removes the merged child, qemu-img empties
# its overlay). This script times, in the shared scenario, those two and a third side: the same device work done with
# no image format at all: `dd oflag=direct` of the 1 GiB (from the page cache, as both tools read it) into a new file,
# one `sync --data` (the cache flush both end with), and `rm` of a 1 GiB file made durable beforehand (the freed
# child). It is a reference taken in the same minutes, not a hard floor: this VM's write speed moves by 2-3x from one
# minute to the next (buffered writes most), so only figures from alternating runs compare. Alternating runs, a sync
# before each, medians.
# Run from the project root:  benchmarks/merge-reference.sh   (REPS=5 for more runs)
set -euo pipefail
. "$(dirname "$0")/common.sh"
REPS=${REPS:-3}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-merge-reference.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
require_tools merge-reference qemu-img qemu-io dd sync python3
publish_dse "$WORK/dse-bin"
head -c 67108864 /dev/urandom > "$WORK/chunk"

# The shared scenario: an 8 GiB parent holding 1 GiB (64 MiB every 512 MiB) and a child holding 1 GiB in between.
setup() {
  rm -f "$WORK"/p.* "$WORK"/k.* "$WORK"/plain.*
  "${DSE[@]}" create "$WORK/p.vhdx" --size 8G >/dev/null; qemu-img create -q -f qcow2 "$WORK/p.qcow2" 8G
  local i args=()
  for i in $(seq 0 15); do "${DSE[@]}" write "$WORK/p.vhdx" --offset $((i * 512 << 20)) --input "$WORK/chunk" >/dev/null; done
  qemu-img create -q -f qcow2 -b "$WORK/p.qcow2" -F qcow2 "$WORK/k.qcow2"
  "${DSE[@]}" create "$WORK/k.vhdx" --parent "$WORK/p.vhdx" >/dev/null
  for i in $(seq 0 15); do
    "${DSE[@]}" write "$WORK/k.vhdx" --offset $(((i * 512 + 256) << 20)) --input "$WORK/chunk" >/dev/null
    args+=(-c "write -P $((i + 1)) $((i * 512 + 256))M 64M")
  done
  qemu-io -f qcow2 "${args[@]}" "$WORK/k.qcow2" >/dev/null
  # The plain file's freed child: 1 GiB of data on disk, as the merged child is.
  for i in $(seq 0 15); do dd if="$WORK/chunk" of="$WORK/plain.child" bs=4M seek=$((i * 16)) conv=notrunc status=none; done
  sync
}

plain_file() {
  local i
  for i in $(seq 0 15); do dd if="$WORK/chunk" of="$WORK/plain.out" bs=4M oflag=direct conv=notrunc seek=$((i * 16)) status=none; done
  sync --data "$WORK/plain.out" && rm "$WORK/plain.child"
}
timed() { local s e; sync; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "merge-reference: $* failed" >&2; exit 1; }; e=$(date +%s.%N); python3 -c "print(round($e - $s, 3))"; }

D=(); Q=(); F=()
for ((r = 0; r < REPS; r++)); do
  setup
  D+=("$(timed "${DSE[@]}" merge "$WORK/k.vhdx")")
  Q+=("$(timed qemu-img commit -q -f qcow2 "$WORK/k.qcow2")")
  F+=("$(timed plain_file)")
done
d=$(printf '%s\n' "${D[@]}" | median); q=$(printf '%s\n' "${Q[@]}" | median); f=$(printf '%s\n' "${F[@]}" | median)
echo "dse merge:                                      $d s   (runs: ${D[*]})"
echo "qemu-img commit:                                $q s   (runs: ${Q[*]})"
echo "plain file (dd oflag=direct, sync --data, rm): $f s   (runs: ${F[*]})"
echo "dse merge / qemu-img commit:  $(ratio "$d" "$q")  (shared target <= 0.8)"
echo "dse merge / plain file:        $(ratio "$d" "$f")"
echo "qemu-img commit / plain file:  $(ratio "$q" "$f")"
