# Sourced by the benchmark scripts (not run on its own): the repository root, tool checks, dse published as the README
# installs it, the generated data, and the timing and ratio helpers they share.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# require_tools SCRIPT TOOL...: exits 2, naming the tool, when one is missing.
require_tools() {
  local who=$1 tool; shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$who: $tool is required" >&2; exit 2; }
  done
}

# publish_dse DIR: publishes dse into DIR as the default publish does (Release, Native AOT: a native binary, no runtime
# start-up or JIT) and sets the array DSE to the command that runs it. When that publish fails (no gcc or zlib), a
# ReadyToRun publish (precompiled, still on the .NET runtime) is measured instead; either way it says which build.
publish_dse() {
  echo "publishing dse (Release, Native AOT)..."
  mkdir -p "$1"
  if dotnet publish -c Release -v q -nologo -o "$1" "$ROOT/src/DiskSnapshotEngine.Cli" >"$1/publish.log" 2>&1 && [ -x "$1/dse" ]; then
    DSE=("$1/dse")
    echo "  measuring the Native AOT dse ($1/dse)"
  else
    echo "  Native AOT publish failed ($1/publish.log); publishing ReadyToRun instead"
    rm -rf "$1/r2r"
    dotnet publish -c Release -v q -nologo -p:PublishAot=false -p:PublishReadyToRun=true -o "$1/r2r" \
      "$ROOT/src/DiskSnapshotEngine.Cli" >"$1/r2r.log" 2>&1 && [ -f "$1/r2r/dse.dll" ] ||
      { tail -20 "$1/r2r.log" >&2; echo "  the ReadyToRun publish failed too ($1/r2r.log)" >&2; exit 1; }
    DSE=(dotnet "$1/r2r/dse.dll")
    echo "  measuring the ReadyToRun dse (dotnet $1/r2r/dse.dll), NOT the Native AOT one: start-up figures are higher"
  fi
}

# spread_data FILE VIRT_MIB DATA_MIB CHUNK_MIB: a raw disk of VIRT_MIB with DATA_MIB of random data in CHUNK_MIB pieces
# spread evenly over it, holes between. Each piece differs (its first bytes are its number), so no tool can profit
# from repeated content.
spread_data() {
  local file=$1 virt=$2 data=$3 chunk=$4 pieces stride i
  head -c $((chunk << 20)) /dev/urandom > "$file.chunk"
  truncate -s "${virt}M" "$file"
  pieces=$(( data / chunk )); (( pieces > 0 )) || pieces=1
  stride=$(( virt / pieces / chunk * chunk )); (( stride >= chunk )) || stride=$chunk
  for ((i = 0; i < pieces; i++)); do
    dd if="$file.chunk" of="$file" bs=1M seek=$(( i * stride )) conv=notrunc status=none
    printf '%08d' "$i" | dd of="$file" bs=1 seek=$(( (i * stride) << 20 )) conv=notrunc status=none
  done
  rm -f "$file.chunk"
}

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# ratio A B: A / B with two decimals (B of 0 counts as 0.01).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) b = 0.01; printf "%.2f", a / b }'; }

# verdict RATIO TARGET: PASS when RATIO <= TARGET.
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "PASS" : "FAIL" }'; }

# run NAME OUTPUT CMD...: times a command REPS times (OUTPUT removed and the page cache's dirty data synced before
# each run, so no tool pays for the previous one's writeback); records the median seconds in SECS, the fastest in
# BEST and the largest peak RSS (KiB) in RSS, and prints them. Runs in the current folder (time.out, run.err).
declare -A SECS RSS BEST
run() {
  local name=$1 out=$2; shift 2
  local times=() rss=0 secs r rep
  for ((rep = 0; rep < REPS; rep++)); do
    rm -f "$out"; sync
    /usr/bin/time -f "%e %M" -o time.out "$@" >/dev/null 2>run.err || { echo "$name failed:"; cat run.err; exit 1; }
    read -r secs r < <(tail -n 1 time.out)
    times+=("$secs")
    (( r > rss )) && rss=$r
  done
  SECS["$name"]=$(printf '%s\n' "${times[@]}" | median)
  RSS["$name"]=$rss
  BEST["$name"]=$(printf '%s\n' "${times[@]}" | sort -n | head -n 1)
  printf "  %-${RUN_NAME_WIDTH:-34}s %8.2f s  %7d KiB peak RSS   (runs: %s)\n" "$name" "${SECS[$name]}" "$rss" "${times[*]}"
}
