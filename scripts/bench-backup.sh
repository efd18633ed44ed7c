#!/usr/bin/env bash
# Benchmark: `rescuebox backup` / `restore` against the pipelines admins run
# today, side by side against the same private vsftpd on 127.0.0.1, medians
# of several runs (hyperfine). Prints, never asserts. Needs root.
#
#   rescuebox backup DEV ftp://…            vs
#   tnftp: put |"dd if=DEV iflag=direct bs=1M | lzop -1 -c" NAME   (the classic)
#   dd iflag=direct | lzop -1 | busybox ftpput … -
#   dd iflag=direct | lzop -1 | curl -T - ftp://…
#   rescuebox restore ftp://… TARGET        vs  curl ftp://… | lzop -dc | dd of=TARGET oflag=direct
#
# The source is scripts/bench-data.sh's disk-like image (binaries, text,
# random, long zero runs: what a disk looks like after zerofill) on a
# read-only loop device.
#   BENCH_DATA_SIZE=1G   image size (the issue's figure is 2G)
#   BENCH_RUNS=3         runs per command
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-3}
BIN=${RESCUEBOX_BIN:-$PWD/dist/rescuebox}
[ "$(id -u)" = 0 ] || { echo "bench-backup.sh: needs root (loop devices, vsftpd)"; exit 0; }
[ -x "$BIN" ] || { echo "bench-backup.sh: build first: ./build-static.sh" >&2; exit 1; }
for tool in lzop hyperfine curl busybox tnftp python3; do
    command -v $tool >/dev/null || { echo "bench-backup.sh: needs $tool" >&2; exit 1; }
done

IMAGE=$(scripts/bench-data.sh)
SIZE=$(stat -c %s "$IMAGE")
WORK=$(mktemp -d /var/tmp/bench-backup.XXXXXX)
DEV="" TARGET="" FTP_DIR=""
cleanup() {
    [ -n "$DEV" ] && losetup -d "$DEV" 2>/dev/null || true
    [ -n "$TARGET" ] && losetup -d "$TARGET" 2>/dev/null || true
    [ -n "$FTP_DIR" ] && scripts/vsftpd-stop.sh "$FTP_DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
DEV=$(losetup -r --find --show "$IMAGE")
truncate -s "$SIZE" "$WORK/target.img"
TARGET=$(losetup --find --show "$WORK/target.img")
eval "$(scripts/vsftpd-start.sh)"
URL="ftp://$FTP_USER@$FTP_HOST:$FTP_PORT"
export FTP_PASSWORD="$FTP_PASS"
cat "$IMAGE" >/dev/null
echo "image $IMAGE ($SIZE bytes) on $DEV; vsftpd $FTP_HOST:$FTP_PORT; cores $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"

# tnftp reads its commands from stdin: the classic `put |"command" NAME`.
cat > "$WORK/classic.sh" <<CLASSIC
#!/bin/sh
tnftp -n -i -V $FTP_HOST $FTP_PORT <<FTP >/dev/null
user $FTP_USER $FTP_PASS
binary
put "|dd if=$DEV iflag=direct bs=1M status=none | lzop -1 -c" classic.lzo
bye
FTP
CLASSIC
chmod +x "$WORK/classic.sh"
# Every run starts with nothing dirty: the last run's writeback must not
# slow down the next command.
clean="rm -f '$FTP_HOME'/*.lzo '$FTP_HOME'/*.part; sync"

hyperfine --style basic --runs "$RUNS" --prepare "$clean" --export-json "$WORK/backup.json" \
    -n "rescuebox backup" "'$BIN' backup '$DEV' '$URL/rb.lzo' 2>/dev/null" \
    -n "tnftp put |\"dd | lzop -1\" (classic)" "'$WORK/classic.sh'" \
    -n "dd | lzop -1 | busybox ftpput" "dd if='$DEV' iflag=direct bs=1M status=none | lzop -1 -c | busybox ftpput -u '$FTP_USER' -p '$FTP_PASS' -P $FTP_PORT $FTP_HOST bb.lzo -" \
    -n "dd | lzop -1 | curl -T -" "dd if='$DEV' iflag=direct bs=1M status=none | lzop -1 -c | curl -s -T - 'ftp://$FTP_USER:$FTP_PASS@$FTP_HOST:$FTP_PORT/curl.lzo'" \
    >/dev/null

# Every contender stored the same data.
"$BIN" backup "$DEV" "$URL/rb.lzo" 2>/dev/null
"$WORK/classic.sh"
for f in rb classic; do lzop -dc "$FTP_HOME/$f.lzo" | cmp - "$IMAGE" || echo "bench-backup.sh: $f.lzo differs from the image!"; done
COMPRESSED=$(stat -c %s "$FTP_HOME/rb.lzo")

hyperfine --style basic --runs "$RUNS" --prepare sync --export-json "$WORK/restore.json" \
    -n "rescuebox restore" "'$BIN' restore '$URL/rb.lzo' '$TARGET' 2>/dev/null" \
    -n "curl | lzop -dc | dd oflag=direct" "curl -s 'ftp://$FTP_USER:$FTP_PASS@$FTP_HOST:$FTP_PORT/rb.lzo' | lzop -dc | dd of='$TARGET' oflag=direct bs=1M status=none" \
    >/dev/null
cmp "$TARGET" "$IMAGE" || echo "bench-backup.sh: the restored device differs from the image!"

# The issue's yardstick: backup to a tmpfs-rooted vsftpd, plain and TLS,
# against bare compression of the same cached source to /dev/null.
# (The disk-rooted server's directory is kept first: starting the second
# one sets FTP_DIR again, and cleanup must stop both.)
DISK_DIR="$FTP_DIR"
eval "$(scripts/vsftpd-start.sh --dir-base /dev/shm --tls)"
SHM_DIR="$FTP_DIR"
trap 'cleanup; for d in "$DISK_DIR" "$SHM_DIR"; do scripts/vsftpd-stop.sh "$d" >/dev/null 2>&1 || true; done' EXIT
SURL="ftp://$FTP_USER@$FTP_HOST:$FTP_PORT"
export FTP_PASSWORD="$FTP_PASS"
hyperfine --style basic --runs "$RUNS" --prepare "rm -f '$FTP_HOME'/*.lzo '$FTP_HOME'/*.part; sync" --export-json "$WORK/bare.json" \
    -n "ddz -1 --no-direct > /dev/null" "'$BIN' ddz -1 --no-direct '$DEV' > /dev/null 2>&1" \
    -n "backup --no-direct (tmpfs vsftpd)" "'$BIN' backup --no-direct '$DEV' '$SURL/rb.lzo' 2>/dev/null" \
    -n "backup --no-direct --tls (tmpfs vsftpd)" "'$BIN' backup --no-direct --tls --cacert '$FTP_CERT' '$DEV' '$SURL/rb.lzo' 2>/dev/null" \
    >/dev/null

python3 - "$WORK" "$SIZE" "$COMPRESSED" <<'PY'
import json, statistics, sys
work, size, compressed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def medians(name):
    return {r["command"]: statistics.median(r["times"]) for r in json.load(open(f"{work}/{name}.json"))["results"]}
b = medians("backup")
print(f"\nbackup: {size} bytes -> {compressed} bytes on the server; medians, MB/s of disk read")
for cmd, t in b.items():
    print(f"  {cmd:40s} {t:7.3f} s  {size / t / 1e6:7.0f} MB/s  x{t / b['rescuebox backup']:5.2f} slower than rescuebox")
others = [t for c, t in b.items() if c != "rescuebox backup" and "classic" not in c]
classic = [t for c, t in b.items() if "classic" in c][0]
print(f"goals: >= 3x the classic pipeline: x{classic / b['rescuebox backup']:.2f}; "
      f">= 2x the best other: x{min(others) / b['rescuebox backup']:.2f}")
r = medians("restore")
for cmd, t in r.items():
    print(f"  {cmd:40s} {t:7.3f} s  {size / t / 1e6:7.0f} MB/s")
print(f"goal: restore >= 1.5x curl | lzop -dc | dd: x{r['curl | lzop -dc | dd oflag=direct'] / r['rescuebox restore']:.2f}")
z = medians("bare")
base = z["ddz -1 --no-direct > /dev/null"]
print(f"\nbackup to a tmpfs-rooted vsftpd against bare compression (goal: <= 1.3x)")
for cmd, t in z.items():
    print(f"  {cmd:40s} {t:7.3f} s  {size / t / 1e6:7.0f} MB/s  x{t / base:5.2f} of ddz > /dev/null")
PY
