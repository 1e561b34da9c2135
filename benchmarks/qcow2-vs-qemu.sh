#!/usr/bin/env bash
# Side-by-side for qcow2 (issue 12): the same generated data, dse against qemu-img.
#   export: dse export SRC.qcow2 OUT.raw    vs  qemu-img convert -O raw          target: dse <= 1.0x
#   clone:  dse clone SRC DST.qcow2         vs  qemu-img convert -t writeback -O qcow2 (both durable: like for like)
#           from a qcow2 and from a VHDX source                                   target: dse <= 0.8x
# Also prints qemu-img convert with its default cache mode (unsafe: it returns before the data is on disk) and peak RSS.
# Sizes in MiB (defaults: 2 GiB of data in an 8 GiB disk):
#   VIRT_MIB=8192 DATA_MIB=2048 REPS=3 benchmarks/qcow2-vs-qemu.sh
# A quick smoke run:  VIRT_MIB=512 DATA_MIB=128 REPS=1 benchmarks/qcow2-vs-qemu.sh
set -euo pipefail

VIRT_MIB=${VIRT_MIB:-8192}
DATA_MIB=${DATA_MIB:-2048}
REPS=${REPS:-3}
CHUNK_MIB=16
. "$(dirname "$0")/common.sh"
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-qcow2-bench.XXXXXX")}
KEEP=${KEEP:-0}
trap '[ "$KEEP" = 1 ] || rm -rf "$WORK"' EXIT

require_tools qcow2-vs-qemu qemu-img dotnet /usr/bin/time
publish_dse "$WORK/dse-bin"
cd "$WORK"
echo "work folder: $WORK (virtual ${VIRT_MIB} MiB, data ${DATA_MIB} MiB)"

spread_data data.raw "$VIRT_MIB" "$DATA_MIB" "$CHUNK_MIB"
qemu-img convert -O qcow2 data.raw src.qcow2
qemu-img convert -O vhdx -o subformat=dynamic data.raw src.vhdx

RUN_NAME_WIDTH=44
cat src.qcow2 src.vhdx > /dev/null
echo "export (qcow2 -> raw):"
run "qemu-img convert -O raw" out.raw qemu-img convert -O raw src.qcow2 out.raw
run "dse export" out.raw "${DSE[@]}" export src.qcow2 out.raw
qemu-img convert -O raw src.qcow2 q.raw; "${DSE[@]}" export src.qcow2 d.raw
cmp -s q.raw d.raw || { echo "export: outputs differ!"; exit 1; }
rm -f q.raw d.raw out.raw
r=$(ratio "${SECS[dse export]}" "${SECS[qemu-img convert -O raw]}")
echo "  ratio dse / qemu-img: $r (target <= 1.0) $(verdict "$r" 1.0)"

for src in qcow2 vhdx; do
  echo "clone ($src -> qcow2):"
  run "qemu-img convert -O qcow2 (unsafe cache)" q.qcow2 qemu-img convert -O qcow2 "src.$src" q.qcow2
  run "qemu-img convert -t writeback -O qcow2" q.qcow2 qemu-img convert -t writeback -O qcow2 "src.$src" q.qcow2
  run "dse clone (durable)" d.qcow2 "${DSE[@]}" clone "src.$src" d.qcow2
  "${DSE[@]}" compare "src.$src" d.qcow2 >/dev/null || { echo "clone: dse's clone differs from its source"; exit 1; }
  qemu-img check -q d.qcow2 || { echo "clone: qemu-img check failed on dse's clone"; exit 1; }
  rm -f q.qcow2 d.qcow2
  r=$(ratio "${SECS[dse clone (durable)]}" "${SECS[qemu-img convert -t writeback -O qcow2]}")
  echo "  ratio dse / qemu-img -t writeback: $r (target <= 0.8) $(verdict "$r" 0.8)"
  echo "  ratio dse / qemu-img unsafe cache: $(ratio "${SECS[dse clone (durable)]}" "${SECS[qemu-img convert -O qcow2 (unsafe cache)]}")"
done
