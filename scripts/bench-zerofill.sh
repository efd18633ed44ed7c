#!/usr/bin/env bash
# zerofill vs the classic `dd if=/dev/zero of=F bs=1M; sync; rm F` on
# identical fresh ext4 images (loop devices doing direct I/O to their backing
# file, so the page cache seen is the filesystem's own). Prints times,
# medians, speed ratio and the peak "Dirty:" of /proc/meminfo during each
# fill. Never asserts. Needs root.
#   ZEROFILL_BENCH_SIZE   image size (default 1G; 768M..2G is the target range)
#   ZEROFILL_BENCH_RUNS   runs per tool (default 3)
#   ZEROFILL_BENCH_DIR    where the images go (default /var/tmp)
#   RESCUEBOX_BIN         the binary (default dist/rescuebox, then .build/release)
set -euo pipefail
cd "$(dirname "$0")/.."

size=${ZEROFILL_BENCH_SIZE:-1G}
runs=${ZEROFILL_BENCH_RUNS:-3}
base=${ZEROFILL_BENCH_DIR:-/var/tmp}
bin=${RESCUEBOX_BIN:-}
for candidate in "$bin" dist/rescuebox .build/release/rescuebox .build/debug/rescuebox; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then bin=$(readlink -f "$candidate"); break; fi
done
if [ "$(id -u)" != 0 ]; then echo "bench-zerofill: needs root (loop devices), skipped"; exit 0; fi
if [ ! -x "$bin" ]; then echo "bench-zerofill: no rescuebox binary (build it first), skipped"; exit 0; fi
command -v mkfs.ext4 >/dev/null || { echo "bench-zerofill: mkfs.ext4 missing, skipped"; exit 0; }

work=$(mktemp -d "$base/rescuebox-bench-zerofill.XXXXXX")
loop=""
sampler=""
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
    mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt" || true
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

dirty_kb() { awk '/^Dirty:/ {print $2}' /proc/meminfo; }

# Samples Dirty: every 50 ms into $1 until killed.
sample_dirty() {
    local out=$1 peak=0 now
    while :; do
        now=$(dirty_kb)
        if [ "$now" -gt "$peak" ]; then peak=$now; echo "$peak" > "$out"; fi
        sleep 0.05
    done
}

fresh_fs() {
    truncate -s 0 "$work/disk.img"
    truncate -s "$size" "$work/disk.img"
    mkfs.ext4 -q -F -b 4096 "$work/disk.img"
    loop=$(losetup --find --show --direct-io=on "$work/disk.img")
    mkdir -p "$work/mnt"
    mount "$loop" "$work/mnt"
    sync
}

drop_fs() {
    umount "$work/mnt"
    losetup -d "$loop"
    loop=""
}

# run_one TOOL -> prints "seconds bytes peak_dirty_kb"
run_one() {
    local tool=$1 start end free_before
    fresh_fs
    free_before=$(( $(stat -f -c '%f * %S' "$work/mnt") ))
    echo 0 > "$work/peak"
    sample_dirty "$work/peak" &
    sampler=$!
    start=$(date +%s.%N)
    if [ "$tool" = dd ]; then
        dd if=/dev/zero of="$work/mnt/F" bs=1M status=none 2>/dev/null || true
        sync
        rm "$work/mnt/F"
    else
        "$bin" zerofill "$work/mnt" 2>/dev/null
    fi
    end=$(date +%s.%N)
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    sampler=""
    drop_fs
    echo "$(echo "$end - $start" | bc -l) $free_before $(cat "$work/peak")"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "bench-zerofill: $runs runs each on fresh $size ext4 images (loop, direct-io), binary $bin"
: > "$work/dd.txt"; : > "$work/zf.txt"
for i in $(seq 1 "$runs"); do
    for tool in dd zerofill; do
        read -r secs bytes peak < <(run_one "$tool")
        printf '  run %d %-8s %8.3f s  %6.0f MB/s  peak Dirty %7d kB\n' "$i" "$tool" "$secs" \
            "$(echo "$bytes / $secs / 1000000" | bc -l)" "$peak"
        echo "$secs $bytes $peak" >> "$work/$([ "$tool" = dd ] && echo dd || echo zf).txt"
    done
done

dd_s=$(cut -d' ' -f1 "$work/dd.txt" | median); zf_s=$(cut -d' ' -f1 "$work/zf.txt" | median)
dd_p=$(cut -d' ' -f3 "$work/dd.txt" | median); zf_p=$(cut -d' ' -f3 "$work/zf.txt" | median)
bytes=$(head -1 "$work/dd.txt" | cut -d' ' -f2)
printf 'median  dd+sync+rm %8.3f s (%4.0f MB/s), peak Dirty %7.0f kB\n' "$dd_s" "$(echo "$bytes / $dd_s / 1000000" | bc -l)" "$dd_p"
printf 'median  zerofill   %8.3f s (%4.0f MB/s), peak Dirty %7.0f kB\n' "$zf_s" "$(echo "$bytes / $zf_s / 1000000" | bc -l)" "$zf_p"
printf 'zerofill speed / dd speed: %.2fx (goal >= 0.95x)\n' "$(echo "$dd_s / $zf_s" | bc -l)"
