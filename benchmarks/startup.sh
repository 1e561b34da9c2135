#!/usr/bin/env bash
# Start-up latency: `dse info` (as published: Native AOT, only the verb that runs is built) against `qemu-img info`
# on the same 1 GiB VHDX, 15 runs each after 3 warm-ups, with hyperfine (Debian package hyperfine).
# Target: dse info median <= 80 ms. Usage: benchmarks/startup.sh   (DSE=/path/to/dse to measure another binary)
set -euo pipefail
. "$(dirname "$0")/common.sh"
WORK=$(mktemp -d -t dse-startup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
command -v hyperfine >/dev/null || { echo "hyperfine missing (apt-get install hyperfine)"; exit 1; }
if [ -z "${DSE:-}" ]; then
  publish_dse "$WORK/dse-bin"
  DSE=${DSE[*]}
fi
$DSE create "$WORK/i.vhdx" --size 1G >/dev/null
hyperfine -N -w 3 -r 15 --export-json "$WORK/t.json" "$DSE info $WORK/i.vhdx" "qemu-img info $WORK/i.vhdx"
python3 - "$WORK/t.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
dse, qemu = r[0]["median"], r[1]["median"]
print(f"dse info median {dse*1000:.0f} ms (user {r[0]['user']*1000:.0f} ms), qemu-img info {qemu*1000:.0f} ms; target <= 80 ms")
sys.exit(0 if dse <= 0.080 else 1)
PY
