#!/usr/bin/env python3
"""Soak test: a thousand random operations on one disk while another process keeps reading it.

Operations: write, snapshot create/revert/delete, rollback, merge --pull, full clone (+ compare), compact,
and a read-back of the current state. An in-memory model holds the content of the current state and of every
snapshot; at the end every snapshot and the current state are exported and compared byte for byte, and
`dse check` must find no error. A reader process exports the disk in a loop the whole time: it may be refused
with exit 12 (the lock of an operation in progress) but must never see any other error. Peak memory (max RSS) of every dse process is
reported.

Usage: tests/soak.py [--ops 1000] [--format vdi|vhdx] [--size-mib 16] [--seed N] [--dir DIR]
Exit code 0 when every check held.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

EXIT_LOCKED = 12
# Every operation that moves or rewrites layers holds the disk's lock across its renames, so the reader sees the chain
# before or after it, or is refused with the lock; a missing parent (9), a parent changed (10), a chain that loops
# (11) or a missing file (8) would be a half-moved chain.
READER_OK = {0, EXIT_LOCKED}
# Exit codes that mean the engine itself broke (corrupt image, internal error).
BROKEN = {4, 70}


class Dse:
    def __init__(self, dll, workdir):
        self.dll = dll
        self.workdir = workdir
        self.peak_kib = 0
        self.calls = 0
        self._lock = threading.Lock()

    def run(self, *args, stdout=subprocess.PIPE, retry_locked=True):
        """Runs dse; retries while another process holds the lock (the reader); returns (code, out, err)."""
        for attempt in range(200):
            fd, rss_file = tempfile.mkstemp(dir=self.workdir)
            os.close(fd)
            p = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file, "dotnet", self.dll, *args],
                               stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            with open(rss_file) as f:
                text = f.read().strip().splitlines()
            os.unlink(rss_file)
            with self._lock:
                self.calls += 1
                if text and text[-1].isdigit():
                    self.peak_kib = max(self.peak_kib, int(text[-1]))
            if p.returncode == EXIT_LOCKED and retry_locked:
                time.sleep(0.02 * (1 + attempt % 5))
                continue
            out = p.stdout.decode() if isinstance(p.stdout, bytes) else ""
            return p.returncode, out, p.stderr.decode()
        raise RuntimeError(f"dse {' '.join(args)}: still locked after 200 attempts")


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.dir = args.dir or tempfile.mkdtemp(prefix="dse-soak-")
        os.makedirs(self.dir, exist_ok=True)
        self.size = args.size_mib << 20
        self.disk = os.path.join(self.dir, "disk." + args.format)
        self.current = bytearray(self.size)
        self.snaps = {}         # name -> bytearray
        self.parent = {}        # name -> parent snapshot name or None
        self.base = None        # snapshot the current state descends from
        self.counts = {}
        self.refusals = {}
        self.failures = []
        self.serial = 0
        self.history = []
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        bindir = os.path.join(self.dir, "bin")
        subprocess.run(["dotnet", "build", os.path.join(here, "src", "DiskSnapshotEngine.Cli"), "-c", "Release",
                        "-o", bindir, "-nologo", "-v", "quiet"], check=True, stdout=subprocess.DEVNULL)
        self.dse = Dse(os.path.join(bindir, "dse.dll"), self.dir)
        self.reader_runs = 0
        self.reader_codes = {}
        self.reader_samples = {}
        self.stop = threading.Event()

    # ---- helpers -------------------------------------------------------------------------------------------
    def must(self, *args):
        code, out, err = self.dse.run(*args)
        if code != 0:
            raise RuntimeError(f"dse {' '.join(args)} exited {code}: {err.strip()}")
        return out

    def maybe(self, op, *args):
        """An operation the engine may refuse with a clear error (e.g. delete of a branching snapshot)."""
        code, out, err = self.dse.run(*args)
        if code in BROKEN:
            self.failures.append(f"{op}: dse {' '.join(args)} exited {code}: {err.strip()}")
        if code != 0:
            self.refusals[op] = self.refusals.get(op, 0) + 1
        return code == 0

    def export(self, image):
        out = os.path.join(self.dir, "export.raw")
        if os.path.exists(out):
            os.unlink(out)
        self.must("export", image, out)
        with open(out, "rb") as f:
            data = f.read()
        os.unlink(out)
        return data

    def new_name(self):
        self.serial += 1
        return f"s{self.serial}"

    # ---- operations ----------------------------------------------------------------------------------------
    def op_write(self):
        length = self.rng.choice([1, 511, 4096, 65536, 300000, 1 << 20])
        offset = self.rng.randrange(0, self.size - length + 1)
        data = self.rng.randbytes(length) if self.rng.random() < 0.85 else bytes(length)
        path = os.path.join(self.dir, "input.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.must("write", self.disk, "--offset", str(offset), "--input", path)
        self.current[offset:offset + length] = data

    def op_snapshot(self):
        if len(self.snaps) >= 12:
            return self.op_delete()
        name = self.new_name()
        self.must("snapshot", "create", self.disk, "--name", name, "--description", f"soak {name}")
        self.snaps[name] = bytearray(self.current)
        self.parent[name] = self.base
        self.base = name

    def op_revert(self):
        if not self.snaps:
            return
        name = self.rng.choice(sorted(self.snaps))
        self.must("snapshot", "revert", self.disk, "--name", name)
        self.current = bytearray(self.snaps[name])
        self.base = name

    def op_rollback(self):
        if self.base is None:
            return
        self.must("rollback", self.disk)
        self.current = bytearray(self.snaps[self.base])

    def op_delete(self):
        if not self.snaps:
            return
        name = self.rng.choice(sorted(self.snaps))
        if self.maybe("delete", "snapshot", "delete", self.disk, "--name", name):
            up = self.parent.pop(name)
            del self.snaps[name]
            for child, p in self.parent.items():
                if p == name:
                    self.parent[child] = up
            if self.base == name:
                self.base = up

    def op_pull(self):
        self.maybe("merge --pull", "merge", "--pull", self.disk)

    def op_clone(self):
        fmt = self.rng.choice(["vhdx", "vdi", "raw"])
        dst = os.path.join(self.dir, f"clone.{'img' if fmt == 'raw' else fmt}")
        if os.path.exists(dst):
            os.unlink(dst)
        self.must("clone", self.disk, dst)
        code, out, err = self.dse.run("compare", self.disk, dst)
        if code != 0:
            self.failures.append(f"clone to {fmt}: compare exited {code}: {out.strip()} {err.strip()}")
        os.unlink(dst)

    def op_compact(self):
        self.must("compact", self.disk)

    def op_verify(self):
        if self.export(self.disk) != bytes(self.current):
            self.failures.append(f"after {sum(self.counts.values())} operations the current state differs from the model")

    OPS = [("write", 40), ("snapshot", 12), ("revert", 8), ("delete", 10), ("rollback", 5), ("pull", 5),
           ("clone", 6), ("compact", 7), ("verify", 7)]

    # ---- reader ----------------------------------------------------------------------------------------------
    def reader(self):
        while not self.stop.is_set():
            code, _, err = self.dse.run("export", self.disk, "-", stdout=subprocess.DEVNULL, retry_locked=False)
            self.reader_runs += 1
            self.reader_codes[code] = self.reader_codes.get(code, 0) + 1
            if code not in READER_OK:
                self.failures.append(f"reader: export exited {code}: {err.strip()}")
            elif code not in (0, EXIT_LOCKED) and len(self.reader_samples.setdefault(code, [])) < 3:
                # Typed refusals other than a held lock are allowed, but say which: the report shows a few.
                self.reader_samples[code].append(f"after {self.history[-1] if self.history else 'start'}: {err.strip()}")

    # ---- main ------------------------------------------------------------------------------------------------
    def run(self):
        self.must("create", self.disk, "--size", f"{self.args.size_mib}M", "--block-size", "1M")
        self.must("snapshot", "create", self.disk, "--name", "empty")
        self.snaps["empty"] = bytearray(self.size)
        self.parent["empty"] = None
        self.base = "empty"
        reader = threading.Thread(target=self.reader, daemon=True)
        reader.start()
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        started = time.time()
        try:
            for i in range(self.args.ops):
                op = self.rng.choices(names, weights)[0]
                self.history.append(f"{i}: {op} (base {self.base}, snapshots {sorted(self.snaps)})")
                getattr(self, "op_" + op)()
                self.counts[op] = self.counts.get(op, 0) + 1
                if self.args.strict and self.export(self.disk) != bytes(self.current):
                    self.failures.append(f"operation {i} ({op}) left the current state different from the model; last operations:\n  "
                                         + "\n  ".join(self.history[-8:]))
                    break
                if (i + 1) % 100 == 0:
                    print(f"  {i + 1} operations, {len(self.snaps)} snapshots, {time.time() - started:.0f} s", flush=True)
        finally:
            self.stop.set()
            reader.join(timeout=120)

        # Every snapshot and the current state, byte for byte.
        listing = json.loads(self.must("snapshot", "list", self.disk, "--json"))
        files = {s["name"]: s["file"] for s in listing["snapshots"]}
        if set(files) != set(self.snaps):
            self.failures.append(f"snapshot names differ: engine {sorted(files)} model {sorted(self.snaps)}")
        for name, content in sorted(self.snaps.items()):
            if name in files and self.export(files[name]) != bytes(content):
                self.failures.append(f"snapshot {name} does not read as it was taken")
        if self.export(self.disk) != bytes(self.current):
            self.failures.append("the current state differs from the model")
        code, out, err = self.dse.run("check", self.disk)
        if code != 0:
            self.failures.append(f"check exited {code}: {out.strip()} {err.strip()}")

        print(f"operations: {self.args.ops} in {time.time() - started:.0f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))
        print("refused (clear errors, model unchanged): " + (", ".join(f"{k} {v}" for k, v in sorted(self.refusals.items())) or "none"))
        print(f"reader: {self.reader_runs} exports, exit codes " + ", ".join(f"{k}: {v}" for k, v in sorted(self.reader_codes.items())))
        for code, samples in sorted(self.reader_samples.items()):
            for sample in samples:
                print(f"  reader exit {code} {sample}")
        print(f"snapshots checked: {len(self.snaps)} + current state; dse processes: {self.dse.calls}; peak memory {self.dse.peak_kib / 1024:.0f} MiB")
        for f in self.failures[:20]:
            print("FAIL: " + f)
        print("soak: PASS" if not self.failures else f"soak: FAIL ({len(self.failures)} problems)")
        return 0 if not self.failures else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--format", choices=["vdi", "vhdx"], default="vdi")
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--dir")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--strict", action="store_true", help="compare the current state after every operation; stop at the first difference")
    args = ap.parse_args()
    print(f"soak: seed {args.seed}, format {args.format}, {args.ops} operations")
    soak = Soak(args)
    try:
        rc = soak.run()
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(soak.dir, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
