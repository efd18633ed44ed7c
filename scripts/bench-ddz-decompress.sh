#!/usr/bin/env bash
# Benchmark: `ddz -d` vs `lzop -dc` on a generated disk-like image (binaries,
# text, random, long zero runs), side by side, medians of several runs.
# Prints medians, ratios and peak memory; never asserts.
#   BENCH_MB=1024 (image size), BENCH_RUNS=5, RESCUEBOX_BIN=dist/rescuebox
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
MB=${BENCH_MB:-1024}
RUNS=${BENCH_RUNS:-5}
BIN=${RESCUEBOX_BIN:-$PWD/dist/rescuebox}
[ -x "$BIN" ] || BIN=$PWD/.build/release/rescuebox
[ -x "$BIN" ] || { echo "build first: ./build-static.sh (or swift build -c release)" >&2; exit 1; }
for tool in lzop hyperfine python3; do command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }; done

WORK=$(mktemp -d /var/tmp/bench-ddz-d.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "generating a ${MB} MiB disk-like image in $WORK ..."
python3 - "$WORK/image" "$MB" <<'EOF'
import os, random, sys, glob
path, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
binaries = b"".join(open(f, "rb").read() for f in sorted(glob.glob("/usr/bin/*"))[:400] if os.path.isfile(f))[: 64 << 20]
words = [w.encode() for w in "the quick brown fox jumps over lazy dog disk image sector block file system kernel".split()]
text = b" ".join(rnd.choice(words) for _ in range(3 << 20))[: 16 << 20]
chunk = 4 << 20
with open(path, "wb") as f:
    written, i = 0, 0
    while written < mb << 20:
        kind = i % 8
        if kind in (0, 4):   data = bytes(chunk)                       # zero runs (free space)
        elif kind in (1, 5): o = rnd.randrange(max(1, len(binaries) - chunk)); data = binaries[o:o + chunk]
        elif kind in (2, 6): o = rnd.randrange(max(1, len(text) - chunk)); data = text[o:o + chunk]
        elif kind == 3:      data = os.urandom(chunk)                  # compressed/encrypted data
        else:                data = bytes(chunk // 2) + os.urandom(chunk // 2)
        data = data.ljust(chunk, b"\0")[: min(chunk, (mb << 20) - written)]
        f.write(data); written += len(data); i += 1
EOF
lzop -1 -c "$WORK/image" > "$WORK/image.lzo"
echo "image $(stat -c %s "$WORK/image") bytes, lzop -1: $(stat -c %s "$WORK/image.lzo") bytes"
echo "cores: $(nproc)  binary: $BIN"

hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/null.json" \
    -n "lzop -dc > /dev/null" "lzop -dc '$WORK/image.lzo' > /dev/null" \
    -n "ddz -d > /dev/null" "'$BIN' ddz -d '$WORK/image.lzo' > /dev/null 2>&1" \
    -n "ddz -d -T 1 > /dev/null" "'$BIN' ddz -d -T 1 '$WORK/image.lzo' > /dev/null 2>&1" >/dev/null
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/file.json" \
    --prepare "rm -f '$WORK/out'" \
    -n "lzop -dc > file; sync file" "lzop -dc '$WORK/image.lzo' > '$WORK/out'; sync '$WORK/out'" \
    -n "lzop -dc > file (no sync)" "lzop -dc '$WORK/image.lzo' > '$WORK/out'" \
    -n "ddz -d -o file (sparse, fsync)" "'$BIN' ddz -d -o '$WORK/out' '$WORK/image.lzo' 2>/dev/null" >/dev/null

# Zero regions (free space of a disk): the decoder recognises repeated
# all-zero blocks by their compressed bytes and makes holes / writes zeros.
ZMB=${BENCH_ZERO_MB:-2048}
head -c $((ZMB << 20)) /dev/zero | lzop -1 -c > "$WORK/zeros.lzo"
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/zeros.json" \
    --prepare "rm -f '$WORK/out'" \
    -n "lzop -dc zeros > /dev/null" "lzop -dc '$WORK/zeros.lzo' > /dev/null" \
    -n "ddz -d zeros > /dev/null" "'$BIN' ddz -d '$WORK/zeros.lzo' > /dev/null 2>&1" \
    -n "ddz -d -o file zeros (holes)" "'$BIN' ddz -d -o '$WORK/out' '$WORK/zeros.lzo' 2>/dev/null" >/dev/null

peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
LZOP_RSS=$(peak lzop -dc "$WORK/image.lzo")
DDZ_RSS=$(peak "$BIN" ddz -d "$WORK/image.lzo")

python3 - "$WORK" "$MB" "$LZOP_RSS" "$DDZ_RSS" "$ZMB" <<'EOF'
import json, statistics, sys
work, mb, lrss, drss, zmb = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def medians(name):
    return {r["command"]: statistics.median(r["times"]) for r in json.load(open(f"{work}/{name}.json"))["results"]}
for name in ("null", "file", "zeros"):
    m = medians(name)
    size = zmb if name == "zeros" else mb
    base = next(iter(m.values()))
    print()
    for cmd, t in m.items():
        print(f"  {cmd:34s} median {t:7.3f} s  {size / t:8.0f} MiB/s  x{base / t:4.2f} vs {next(iter(m))}")
print(f"\n  peak RSS: lzop -dc {int(lrss) / 1024:.1f} MiB, ddz -d {int(drss) / 1024:.1f} MiB")
EOF
