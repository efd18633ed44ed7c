#!/usr/bin/env bash
# Generates a disk-like benchmark image: executables and libraries, text
# (headers, docs), random data (as compressed or encrypted files are), and
# long runs of zeros (unused space), interleaved in 32 MiB stretches:
#   8 MiB binaries, 6 MiB text, 4 MiB random, 2 MiB small mixed, 12 MiB zeros.
# The zeros are written (allocated), not holes, as on a real disk.
#
# Usage: scripts/bench-data.sh [OUTPUT]     (prints the image's path)
#   BENCH_DATA_SIZE   image size, e.g. 512M, 2G (default 1G)
#   OUTPUT            default /var/tmp/rescuebox-bench/disk.img
# An existing image of the right size made by this script is reused.
set -euo pipefail

size_text="${BENCH_DATA_SIZE:-1G}"
size=$(numfmt --from=iec "${size_text%B}")
out="${1:-/var/tmp/rescuebox-bench/disk.img}"
mkdir -p "$(dirname "$out")"
stamp="$out.made-by-bench-data"
unit=$((32 << 20))
size=$(( (size + unit - 1) / unit * unit ))

if [ -f "$out" ] && [ -f "$stamp" ] && [ "$(stat -c %s "$out")" = "$size" ] && [ "$(cat "$stamp")" = "v1 $size" ]; then
    echo "$out"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/var/tmp}/bench-data.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Pools the stretches are cut from (different offsets each time).
find /usr/bin /usr/sbin /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -size +16k 2>/dev/null | LC_ALL=C sort \
    | xargs cat 2>/dev/null | head -c $((96 << 20)) > "$work/bin" || true
find /usr/include /usr/share/doc /usr/share/perl* /usr/lib/python3* -type f \( -name '*.h' -o -name '*.txt' -o -name '*.py' \
    -o -name '*.pm' -o -name 'copyright' -o -name 'README*' \) 2>/dev/null | LC_ALL=C sort \
    | xargs cat 2>/dev/null | head -c $((64 << 20)) > "$work/text" || true
for pool in bin text; do
    if [ "$(stat -c %s "$work/$pool")" -lt $((16 << 20)) ]; then
        echo "bench-data.sh: not enough $pool data on this system" >&2
        exit 1
    fi
done
binsize=$(stat -c %s "$work/bin")
textsize=$(stat -c %s "$work/text")

# piece FILE OFFSET LENGTH: LENGTH bytes of FILE from OFFSET to stdout.
piece() {
    if [ "$2" = 0 ]; then
        dd if="$1" bs=1M count="$3" iflag=count_bytes,fullblock status=none
    else
        dd if="$1" bs=1M skip="$2" count="$3" iflag=skip_bytes,count_bytes,fullblock status=none
    fi
}

: > "$out.tmp"
units=$((size / unit))
mib=$((1 << 20))
for ((i = 0; i < units; i++)); do
    boff=$(( (i * 13 * mib) % (binsize - 8 * mib) ))
    toff=$(( (i * 7 * mib) % (textsize - 6 * mib) ))
    {
        piece "$work/bin" "$boff" $((8 * mib))
        piece "$work/text" "$toff" $((6 * mib))
        piece /dev/urandom 0 $((4 * mib))
        # small mixed: 64 KiB pieces alternating text, zeros, binary, random
        for ((k = 0; k < 8; k++)); do
            piece "$work/text" $((toff + k * 65536)) 65536
            piece /dev/zero 0 65536
            piece "$work/bin" $((boff + k * 65536)) 65536
            piece /dev/urandom 0 65536
        done
        piece /dev/zero 0 $((12 * mib))
    } >> "$out.tmp"
done
mv "$out.tmp" "$out"
echo "v1 $size" > "$stamp"
echo "$out"
