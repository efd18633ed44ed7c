#!/usr/bin/env bash
# Benchmark: `backup --used` against the ways to get a small image today, on
# one disk-like image: MBR, an NTFS and an ext4 partition each about 30% used,
# with stale (deleted, random) data in most of the free space. Prints wall
# time, bytes read from the device (/proc/PID/io read_bytes, summed over the
# pipeline) and image size, side by side; each run is followed by its restore
# check. Never asserts. Needs root (loop devices, mounts).
#
#   backup --used DEV FILE
#   zerofill on both partitions (mounted), then backup DEV FILE
#   backup DEV FILE                       (plain, stale data and all)
#   partclone.ntfs -c -s P1 -o - | lzop -1  +  partclone.extfs -c -s P2 -o - | lzop -1
#
#   BENCH_USED_SIZE=4G   disk size (the issue's figure)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RESCUEBOX_BIN:-$PWD/dist/rescuebox}
SIZE=${BENCH_USED_SIZE:-4G}
[ "$(id -u)" = 0 ] || { echo "bench-used.sh: needs root (loop devices, mounts)"; exit 0; }
[ -x "$BIN" ] || { echo "bench-used.sh: build first: ./build-static.sh" >&2; exit 1; }
for tool in lzop sfdisk mkntfs ntfs-3g mkfs.ext4 partclone.ntfs partclone.extfs e2fsck ntfsfix; do
    command -v $tool >/dev/null || { echo "bench-used.sh: needs $tool" >&2; exit 1; }
done

WORK=$(mktemp -d /var/tmp/bench-used.XXXXXX)
LOOPS=()
cleanup() {
    umount "$WORK"/mnt* 2>/dev/null || true
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
# attach VAR LOSETUP-ARGS...: attaches a loop device, remembered for cleanup
# (not in a command substitution, whose subshell would forget it).
attach() { local var=$1 d; shift; d=$(losetup --find --show "$@"); LOOPS+=("$d"); printf -v "$var" %s "$d"; }
detach() {   # detach DEV...: only loop devices this script attached
    local d l keep
    for d in "$@"; do
        losetup -d "$d"
        keep=(); for l in "${LOOPS[@]}"; do [ "$l" = "$d" ] || keep+=("$l"); done; LOOPS=("${keep[@]}")
    done
}

IMG=$WORK/disk.img
truncate -s "$SIZE" "$IMG"
BYTES=$(stat -c %s "$IMG")
HALF_MB=$(( BYTES / 2 / 1048576 - 2 ))
printf 'label: dos\nstart=2048, size=%sM, type=7\nsize=%sM, type=83\n' $HALF_MB $HALF_MB | sfdisk -q "$IMG"
P1_START=1048576 P1_LEN=$((HALF_MB * 1048576))
P2_START=$((P1_START + P1_LEN)) P2_LEN=$P1_LEN
attach P1 -o $P1_START --sizelimit $P1_LEN "$IMG"
attach P2 -o $P2_START --sizelimit $P2_LEN "$IMG"
mkntfs -q -f -F "$P1" >/dev/null 2>&1
mkfs.ext4 -q -F "$P2"
mkdir -p "$WORK/mnt1" "$WORK/mnt2"
ntfs-3g "$P1" "$WORK/mnt1"
mount "$P2" "$WORK/mnt2"
# ~90% of each filesystem written with random files, then two thirds deleted:
# about 30% used, about 60% stale random data in the free space.
fill_mb=$((HALF_MB * 9 / 10 / 30))
for m in "$WORK/mnt1" "$WORK/mnt2"; do
    mkdir -p "$m/data"
    for i in $(seq 1 30); do head -c ${fill_mb}M /dev/urandom > "$m/data/f$i"; done
    cp -r /usr/share/doc "$m/doc" 2>/dev/null || true
    sync
    for i in $(seq 1 30); do [ $((i % 3)) = 0 ] || rm "$m/data/f$i"; done
    sync
done
umount "$WORK/mnt1" "$WORK/mnt2"
# Detaching the partitions' loop devices flushes everything they wrote into
# the image (else ext4's last superblock write can still be on its way and
# the disk looks as if its journal needed recovery); attach them again for
# partclone and zerofill.
detach "$P1" "$P2"
attach P1 -o $P1_START --sizelimit $P1_LEN "$IMG"
attach P2 -o $P2_START --sizelimit $P2_LEN "$IMG"
attach DEV -r --direct-io=on "$IMG"
echo "disk $SIZE ($BYTES bytes): p1 ntfs, p2 ext4, each ~30% used, stale data in free space; on $DEV; cores $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME OUT CMD...: wall time and read_bytes summed over the process tree.
declare -A WALL READ OUT
run() {
    local name=$1 out=$2; shift 2
    local t0 t1 pid total=0
    sync   # no writeback of earlier steps during the timed run
    t0=$(date +%s.%N)
    "$@" &
    pid=$!
    declare -A seen=()
    while kill -0 $pid 2>/dev/null; do
        for p in $pid $(pgrep -P $pid 2>/dev/null) $(for c in $(pgrep -P $pid 2>/dev/null); do pgrep -P $c; done); do
            v=$(awk '/^read_bytes/ {print $2}' /proc/$p/io 2>/dev/null || true)
            [ -n "$v" ] && seen[$p]=$v
        done
        sleep 0.05
    done
    wait $pid
    t1=$(date +%s.%N)
    for p in "${!seen[@]}"; do total=$((total + seen[$p])); done
    WALL[$name]=$(echo "$t1 - $t0" | bc)
    READ[$name]=$total
    OUT[$name]=$(stat -c %s $out)
}

check_restore() {   # check_restore NAME FILE: decompress onto a blank disk, fsck both partitions
    local name=$1 tgt=$WORK/restored.img
    rm -f "$tgt"; truncate -s "$BYTES" "$tgt"
    "$BIN" ddz -d "$2" -o "$tgt" -f 2>/dev/null
    local r1 r2
    attach r1 -r -o $P1_START --sizelimit $P1_LEN "$tgt"
    attach r2 -r -o $P2_START --sizelimit $P2_LEN "$tgt"
    local ok=ok
    ntfsfix -n "$r1" >/dev/null 2>&1 || ok="ntfsfix FAILED"
    e2fsck -fn "$r2" >/dev/null 2>&1 || ok="$ok, e2fsck FAILED"
    detach "$r1" "$r2"
    rm -f "$tgt"
    echo "  restore check $name: $ok"
}

run used "$WORK/used.lzo" "$BIN" backup --used "$DEV" "$WORK/used.lzo"
check_restore used "$WORK/used.lzo"
rm -f "$WORK/used.lzo"
run plain "$WORK/plain.lzo" "$BIN" backup "$DEV" "$WORK/plain.lzo"
check_restore plain "$WORK/plain.lzo"
rm -f "$WORK/plain.lzo"
run partclone "$WORK/pc2.lzo" sh -c "partclone.ntfs -c -q -s $P1 -o - 2>/dev/null | lzop -1 > $WORK/pc1.lzo && partclone.extfs -c -q -s $P2 -o - 2>/dev/null | lzop -1 > $WORK/pc2.lzo"
OUT[partclone]=$(( $(stat -c %s "$WORK/pc1.lzo") + $(stat -c %s "$WORK/pc2.lzo") ))
echo "  restore check partclone: (partclone images, one per partition; not restored here)"
rm -f "$WORK"/pc*.lzo
# zerofill writes to the disk: last, on the same image, read-write.
zf() {
    ntfs-3g "$P1" "$WORK/mnt1" && mount "$P2" "$WORK/mnt2" &&
    "$BIN" zerofill "$WORK/mnt1" 2>/dev/null && "$BIN" zerofill "$WORK/mnt2" 2>/dev/null &&
    umount "$WORK/mnt1" "$WORK/mnt2" && "$BIN" backup "$DEV" "$WORK/zf.lzo"
}
run zerofill "$WORK/zf.lzo" zf
check_restore zerofill "$WORK/zf.lzo"

printf '\n%-34s %10s %16s %14s\n' "method" "wall s" "read_bytes" "image bytes"
for n in used zerofill plain partclone; do
    case $n in
        used) label="backup --used" ;;
        zerofill) label="zerofill x2 + backup" ;;
        plain) label="backup (plain)" ;;
        partclone) label="partclone.{ntfs,extfs} | lzop -1" ;;
    esac
    printf '%-34s %10.2f %16s %14s\n' "$label" "${WALL[$n]}" "${READ[$n]}" "${OUT[$n]}"
done
echo "ratios: --used / (zerofill+backup): time $(echo "scale=2; ${WALL[used]} / ${WALL[zerofill]}" | bc)x (goal <= 0.5x), image $(echo "scale=2; ${OUT[used]} / ${OUT[zerofill]}" | bc)x (goal <= 1.0x)"
echo "note: read_bytes of the zerofill run counts only the backup's reads (zerofill writes); the loop device uses direct I/O"
