#!/usr/bin/env bash
# Runs every test of the solution. First installs, only when missing, the Debian tools the tests drive
# (apt-get update only when something is missing; sudo only when not root). Works with no stdin (CI).
# Ends with one line "N passed, N failed, N skipped"; exits non-zero when anything failed or did not build.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool on PATH -> Debian package that provides it
declare -A package_of=(
  [qemu-img]=qemu-utils
  [qemu-io]=qemu-utils
  [vhdiinfo]=libvhdi-utils
  [vhdimount]=libvhdi-utils # the model tests read VHD chains through it (FUSE; as root it unmounts with umount)
  [xmllint]=libxml2-utils
  [virsh]=libvirt-clients
  [bzip2]=bzip2
  [7zz]=7zip
  [nbdinfo]=libnbd-bin
  [nbdcopy]=libnbd-bin
  [systemd-analyze]=systemd
  [mkfs.xfs]=xfsprogs
  [filefrag]=e2fsprogs
  [strace]=strace
  [mkfs.ext4]=e2fsprogs
  [gcc]=gcc
)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
# The Native AOT link (gcc) takes zlib from the system (-lz): the ILCompiler package ships no libz.a for linux-x64.
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if ((${#missing[@]} > 0)); then
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  echo "installing missing test tools: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update </dev/null
  "${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}" </dev/null
fi

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

# The Native AOT dse that the default publish makes (what users and the benchmarks run): the process tests and
# AotBinaryTests run it through DSE_AOT (dotnet test alone runs the process tests on dotnet dse.dll). A DSE_AOT already
# set (a developer's narrow rerun: DSE_AOT=/path/to/dse tests/run.sh --filter ...) is used as it is, with no publish.
publish_failed() {
  [ -e "$results/publish.log" ] && tail -30 "$results/publish.log"
  echo "$1" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}
if [ -z "${DSE_AOT:-}" ]; then
  echo "publishing the Native AOT dse: dotnet publish src/DiskSnapshotEngine.Cli -c Release"
  dotnet publish src/DiskSnapshotEngine.Cli -c Release -o "$results/aot" </dev/null >"$results/publish.log" 2>&1 ||
    publish_failed "the Native AOT publish failed"
  export DSE_AOT="$results/aot/dse"
else
  echo "using DSE_AOT=$DSE_AOT (no publish)"
fi
# A publish that succeeds without making the native binary (PublishAot turned off, a non-linux-x64 RID) would leave
# the AOT tests nothing to run.
[ -x "$DSE_AOT" ] || publish_failed "no executable Native AOT dse at $DSE_AOT"

set +e
dotnet test DiskSnapshotEngine.sln -c Release --logger trx --results-directory "$results" \
  --blame-hang-timeout 15m "$@" </dev/null
status=$?
set -e

# Sum the counters of every test project's TRX file. Skipped tests are counted in "total" but not in "executed".
count() {
  local total=0 n
  for f in "$results"/*.trx; do
    [ -e "$f" ] || continue
    n="$(grep -o "<Counters [^>]*" "$f" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || true)"
    total=$((total + ${n:-0}))
  done
  echo "$total"
}
passed="$(count passed)"
failed=$(( $(count failed) + $(count error) + $(count timeout) + $(count aborted) ))
skipped=$(( $(count total) - $(count executed) ))
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  exit 1
fi
if [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
