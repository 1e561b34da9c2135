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
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dse-qcow2-bench.XXXXXX")}
KEEP=${KEEP:-0}
trap '[ "$KEEP" = 1 ] || rm -rf "$WORK"' EXIT

for tool in qemu-img dotnet /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "qcow2-vs-qemu: $tool is required" >&2; exit 2; }
done

echo "publishing dse (Release, ReadyToRun)..."
mkdir -p "$WORK"
if dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -v q -nologo \
     -o "$WORK/dse-bin" "$ROOT/src/DiskSnapshotEngine.Cli" >/dev/null 2>&1; then
  DSE=("$WORK/dse-bin/dse")
else
  echo "  (ReadyToRun publish failed; using a plain Release build)"
  dotnet build -c Release -v q -nologo "$ROOT/src/DiskSnapshotEngine.Cli" >/dev/null
  DSE=(dotnet "$ROOT/src/DiskSnapshotEngine.Cli/bin/Release/net10.0/dse.dll")
fi
cd "$WORK"
echo "work folder: $WORK (virtual ${VIRT_MIB} MiB, data ${DATA_MIB} MiB)"

# DATA_MIB of random data in CHUNK_MIB pieces spread evenly over the disk, each piece different.
head -c $((CHUNK_MIB << 20)) /dev/urandom > chunk.bin
truncate -s "${VIRT_MIB}M" data.raw
pieces=$(( DATA_MIB / CHUNK_MIB )); (( pieces > 0 )) || pieces=1
stride=$(( VIRT_MIB / pieces / CHUNK_MIB * CHUNK_MIB )); (( stride >= CHUNK_MIB )) || stride=$CHUNK_MIB
for ((i = 0; i < pieces; i++)); do
  dd if=chunk.bin of=data.raw bs=1M seek=$(( i * stride )) conv=notrunc status=none
  printf '%08d' "$i" | dd of=data.raw bs=1 seek=$(( (i * stride) << 20 )) conv=notrunc status=none
done
qemu-img convert -O qcow2 data.raw src.qcow2
qemu-img convert -O vhdx -o subformat=dynamic data.raw src.vhdx
rm -f chunk.bin

declare -A SECS RSS
run() { # NAME OUTPUT CMD...: median wall time of REPS runs (output removed and dirty data synced before each), peak RSS
  local name=$1 out=$2; shift 2
  local times=() rss=0 secs r
  for ((rep = 0; rep < REPS; rep++)); do
    rm -f "$out"; sync
    /usr/bin/time -f "%e %M" -o time.out "$@" >/dev/null 2>run.err || { echo "$name failed:"; cat run.err; exit 1; }
    read -r secs r < <(tail -n 1 time.out)
    times+=("$secs")
    (( r > rss )) && rss=$r
  done
  SECS["$name"]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  RSS["$name"]=$rss
  printf '  %-44s %8.2f s  %7d KiB peak RSS   (runs: %s)\n' "$name" "${SECS[$name]}" "$rss" "${times[*]}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) b = 0.01; printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "PASS" : "FAIL" }'; }

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
