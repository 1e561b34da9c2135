#!/usr/bin/env bash
# Side-by-side: nbdcopy reading an export from `dse serve` against the same data from `qemu-nbd` (issue 11 acceptance:
# dse serve reaches at least 0.8x qemu-nbd's throughput).
#   data: DATA_MIB of random data in 32 MiB pieces spread over a VIRT_MIB disk (holes between). A piece is one whole
#   VHDX block (32 MiB by default, for dse and qemu-img alike), so every server moves the same bytes: block status
#   reports VHDX data per block, and a half-filled block would make VHDX exports move zeros that a raw file skips.
#   qemu-nbd serves it as a flat raw file and as a flat VHDX (qemu's own); dse serve as a dynamic VHDX (dse's own) and
#   as a 2-layer differencing VHDX chain (half the pieces in each layer), which only dse can serve.
#   nbdcopy copies each export to null: (reads every data extent, skips holes by block status), with the default
#   connections (4 when the server allows multi-conn) and with --connections=1. Unix sockets, read-only exports.
# Prints the median of REPS runs (servers started once, files warm in the page cache: every file is read before timing)
# and the throughput ratio dse / qemu-nbd (raw), target >= 0.8; also each server's CPU time per run (user + system,
# from /proc), which a busy shared machine disturbs much less than wall time.
# Usage: VIRT_MIB=4096 DATA_MIB=2048 REPS=7 benchmarks/nbd-vs-qemu-nbd.sh   (needs qemu-img, qemu-nbd, nbdcopy)
set -euo pipefail
VIRT_MIB=${VIRT_MIB:-4096}
DATA_MIB=${DATA_MIB:-2048}
REPS=${REPS:-7}
. "$(dirname "$0")/common.sh"
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-nbd-bench.XXXXXX")}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT
require_tools nbd-vs-qemu-nbd qemu-img qemu-nbd nbdcopy dotnet

publish_dse "$WORK/dse-bin"
cd "$WORK"
echo "work folder: $WORK (virtual ${VIRT_MIB} MiB, data ${DATA_MIB} MiB, ${REPS} runs each)"

# --- data: the same bytes in every image ---
PIECE=32
pieces=$(( DATA_MIB / PIECE )); stride=$(( VIRT_MIB / pieces / PIECE * PIECE ))
truncate -s "${VIRT_MIB}M" flat.raw
"${DSE[@]}" create base.vhdx --size "${VIRT_MIB}M" >/dev/null
for ((i = 0; i < pieces; i++)); do
  head -c "${PIECE}M" /dev/urandom > piece.bin
  dd if=piece.bin of=flat.raw bs=1M seek=$(( i * stride )) conv=notrunc status=none
  # Even pieces go to the base, odd ones to the child (created below), so the chain needs both layers.
  if (( i % 2 == 0 )); then "${DSE[@]}" write base.vhdx --offset "$(( i * stride ))M" --input piece.bin >/dev/null; fi
done
"${DSE[@]}" create child.vhdx --parent base.vhdx >/dev/null
for ((i = 1; i < pieces; i += 2)); do
  dd if=flat.raw of=piece.bin bs=1M skip=$(( i * stride )) count=$PIECE status=none
  "${DSE[@]}" write child.vhdx --offset "$(( i * stride ))M" --input piece.bin >/dev/null
done
rm -f piece.bin
"${DSE[@]}" clone flat.raw dse.vhdx >/dev/null
qemu-img convert -f raw -O vhdx -o subformat=dynamic flat.raw qemu.vhdx
for f in flat.raw dse.vhdx qemu.vhdx base.vhdx child.vhdx; do cat "$f" > /dev/null; done

# --- servers ---
declare -A pid_of
serve_dse() { # name image
  "${DSE[@]}" serve "$2" --read-only --socket "$WORK/$1.sock" > "$WORK/$1.log" 2>&1 & pids+=($!); pid_of[$1]=$!
}
serve_qemu() { # name format image
  qemu-nbd --read-only --shared=8 --persistent --format="$2" --socket="$WORK/$1.sock" "$3" & pids+=($!); pid_of[$1]=$!
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
serve_qemu q-raw raw flat.raw
serve_qemu q-vhdx vhdx qemu.vhdx
serve_dse d-vhdx dse.vhdx
serve_dse d-chain child.vhdx
for s in q-raw q-vhdx d-vhdx d-chain; do
  for _ in $(seq 100); do [ -S "$WORK/$s.sock" ] && break; sleep 0.1; done
done
uri() { echo "nbd+unix:///?socket=$WORK/$1.sock"; }

# Same bytes from every server, or the timing means nothing.
ref=$(nbdcopy "$(uri q-raw)" - | sha256sum)
for s in q-vhdx d-vhdx d-chain; do
  [ "$(nbdcopy "$(uri "$s")" - | sha256sum)" = "$ref" ] || { echo "$s serves different bytes!"; exit 1; }
done

tck=$(getconf CLK_TCK)
declare -A t cpu
for conns in default 1; do
  opt=(); [ "$conns" = 1 ] && opt=(--connections=1)
  declare -A runs=() cpus=()
  # Interleaved runs: a noisy neighbour slows every server alike, not one of them.
  for ((r = 0; r < REPS; r++)); do
    for s in q-raw q-vhdx d-vhdx d-chain; do
      c0=$(cpu_ticks "${pid_of[$s]}"); s0=$(date +%s.%N)
      nbdcopy "${opt[@]}" "$(uri "$s")" null:
      s1=$(date +%s.%N); c1=$(cpu_ticks "${pid_of[$s]}")
      runs[$s]+="$(echo "$s1 - $s0" | bc -l) "
      cpus[$s]+="$(echo "($c1 - $c0) / $tck" | bc -l) "
    done
  done
  for s in q-raw q-vhdx d-vhdx d-chain; do
    t[$conns,$s]=$(tr ' ' '\n' <<<"${runs[$s]}" | grep . | median)
    cpu[$conns,$s]=$(tr ' ' '\n' <<<"${cpus[$s]}" | grep . | median)
  done
  echo
  echo "nbdcopy to null: (${conns} connections), median of ${REPS}:"
  for s in q-raw q-vhdx d-vhdx d-chain; do
    mbs=$(echo "$DATA_MIB / ${t[$conns,$s]}" | bc -l)
    printf '  %-34s %7.3f s  %7.0f MiB/s   server CPU %5.2f s\n' "$(case $s in q-raw) echo 'qemu-nbd, flat raw';; q-vhdx) echo 'qemu-nbd, flat VHDX';;
      d-vhdx) echo 'dse serve, dynamic VHDX';; d-chain) echo 'dse serve, 2-layer VHDX chain';; esac)" "${t[$conns,$s]}" "$mbs" "${cpu[$conns,$s]}"
  done
  for s in d-vhdx d-chain; do
    ratio=$(echo "${t[$conns,q-raw]} / ${t[$conns,$s]}" | bc -l)
    printf '  %s throughput vs qemu-nbd raw: %.2fx (target >= 0.8) %s\n' "$s" "$ratio" "$([ "$(echo "$ratio >= 0.8" | bc -l)" = 1 ] && echo PASS || echo FAIL)"
  done
done
