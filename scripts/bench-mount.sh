#!/usr/bin/env bash
# Benchmark: `rescuebox mount` (seekable lzop image) against what users do
# today, on a 2 GiB MBR disk (one ext4 partition full of disk-like data,
# scripts/bench-data.sh) backed up to a private vsftpd on 127.0.0.1:
#   1. one 8 MiB file back: mount over FTP + loop mount + cp, against a full
#      `restore` + loop mount + cp: time and bytes the server sent (xferlog);
#   2. sequential read of DIR/disk.img (dd bs=1M), local and over FTP,
#      against `ddz -d > /dev/null` of the same image (goal >= 0.7x), wall
#      time and CPU time (user+sys: ddz; dd plus the mount process);
#   3. random 4 KiB reads per second (O_DIRECT, so the page cache does not
#      answer), cold (fresh mount) and cached (the same offsets again).
# Every side reads the .lzo from the page cache (warmed with cat; no
# machine-wide drop_caches); each mount is fresh, so disk.img starts uncached.
# Medians of BENCH_RUNS (default 5); never asserts. Needs root.
#   BENCH_DATA_SIZE=2G  BENCH_RUNS=5  RESCUEBOX_BIN=dist/rescuebox
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RESCUEBOX_BIN:-$PWD/dist/rescuebox}
[ -x "$BIN" ] || { echo "build first: ./build-static.sh" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-mount.sh: needs root (loop devices, FUSE, vsftpd)"; exit 0; }
RUNS=${BENCH_RUNS:-5}
SIZE_TEXT=${BENCH_DATA_SIZE:-2G}
DATA=$(BENCH_DATA_SIZE=$SIZE_TEXT scripts/bench-data.sh)
SIZE=$(stat -c %s "$DATA")

WORK=$(mktemp -d /var/tmp/bench-mount.XXXXXX)
FTP_DIR=""
cleanup() {
    for m in "$WORK"/fs "$WORK"/mnt; do mountpoint -q "$m" 2>/dev/null && unmount "$m"; done
    [ -n "$FTP_DIR" ] && scripts/vsftpd-stop.sh "$FTP_DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/fs" "$WORK/mnt"

# The disk: MBR, one ext4 partition holding the disk-like data as files.
DISK=$WORK/disk.raw
truncate -s $((SIZE + (2 << 20))) "$DISK"
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$DISK"
PART=$(losetup -o $((1 << 20)) --sizelimit "$SIZE" --find --show "$DISK")
mkfs.ext4 -q -F -b 4096 "$PART"
mount "$PART" "$WORK/fs"
head -c 8388608 /dev/urandom > "$WORK/fs/one.bin"
ONE_SUM=$(sha256sum < "$WORK/fs/one.bin" | cut -c1-64)
for n in $(seq 0 $(( (SIZE >> 20) * 85 / 100 / 64 - 1 ))); do
    dd if="$DATA" of="$WORK/fs/part$n.bin" bs=1M skip=$((n * 64)) count=64 status=none
done
umount "$WORK/fs"
losetup -d "$PART"

eval "$(scripts/vsftpd-start.sh)"
# Restart the same server with the wu-ftpd transfer log (bytes per transfer).
# The new listener's PID goes to listener.pid, which vsftpd-stop.sh reads:
# written only to vsftpd.pid it outlived every run.
kill "$FTP_PID"; while kill -0 "$FTP_PID" 2>/dev/null; do sleep 0.1; done
sed -i "s|xferlog_enable=NO|xferlog_enable=YES\nxferlog_std_format=YES\nxferlog_file=$FTP_DIR/xferlog|" "$FTP_DIR/vsftpd.conf"
/usr/sbin/vsftpd "$FTP_DIR/vsftpd.conf" >"$FTP_DIR/stderr2" 2>&1 </dev/null &
FTP_PID=$!
echo "$FTP_PID" > "$FTP_DIR/listener.pid"
echo "$FTP_PID" > "$FTP_DIR/vsftpd.pid"
for _ in $(seq 100); do (exec 3<>/dev/tcp/$FTP_HOST/$FTP_PORT) 2>/dev/null && break; sleep 0.1; done
export FTP_PASSWORD=$FTP_PASS
URL=ftp://$FTP_USER@$FTP_HOST:$FTP_PORT/disk.lzo
"$BIN" backup "$DISK" "$URL" 2>/dev/null
"$BIN" ddz --index "$FTP_HOME/disk.lzo"
chown "$FTP_USER" "$FTP_HOME/disk.lzo.index"
cp "$FTP_HOME/disk.lzo" "$FTP_HOME/disk.lzo.index" "$WORK/"
IMAGE=$(stat -c %s "$WORK/disk.lzo")
echo "disk $((SIZE + (2 << 20))) bytes, image $IMAGE bytes; cores $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg); $BIN"

sent() { awk '{s += $8} END {print s + 0}' "$FTP_DIR/xferlog"; }
now() { date +%s.%N; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
# The images in the page cache, on the server's side and ours alike.
settle() { sync; cat "$FTP_HOME/disk.lzo" "$WORK/disk.lzo" > /dev/null; }
# timed CMD...: "WALL CPU" of CMD (stdout to /dev/null), CPU = user+sys of it and its children.
timed() {
    python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN); print(time.monotonic() - t, r.ru_utime + r.ru_stime)' "$@"
}
# cpu PID: user+sys seconds of a running process (the mount daemon).
cpu() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
mount_pid() { pgrep -n -f "rescuebox mount .* $WORK/mnt\$"; }
# seq SOURCE: sequential dd of a fresh mount of SOURCE; "WALL CPU" (dd + the mount process).
seq_read() {
    "$BIN" mount "$1" "$WORK/mnt"
    local pid w c
    pid=$(mount_pid)
    read -r w c < <(timed dd if="$WORK/mnt/disk.img" of=/dev/null bs=1M)
    c=$(python3 -c "print($c + $(cpu "$pid"))")
    unmount "$WORK/mnt"
    echo "$w $c"
}
# The kernel releases a FUSE file asynchronously: umount may say busy for a moment.
unmount() { for _ in $(seq 100); do umount "$1" 2>/dev/null && return; sleep 0.1; done; umount "$1"; }

one_mount=() one_mount_bytes=() one_restore=() one_restore_bytes=()
seq_ddz=() seq_local=() seq_ftp=() cpu_ddz=() cpu_local=() cpu_ftp=() rnd_cold=() rnd_warm=()
for run in $(seq "$RUNS"); do
    # 1a. One file through mount over FTP.
    settle; : > "$FTP_DIR/xferlog"; t0=$(now)
    "$BIN" mount "$URL" "$WORK/mnt"
    mount -o loop,ro "$WORK/mnt/p1.img" "$WORK/fs"
    cp "$WORK/fs/one.bin" "$WORK/one.copy"
    unmount "$WORK/fs"; unmount "$WORK/mnt"
    one_mount+=("$(python3 -c "print($(now) - $t0)")"); one_mount_bytes+=("$(sent)")
    [ "$(sha256sum < "$WORK/one.copy" | cut -c1-64)" = "$ONE_SUM" ] || echo "bench-mount.sh: one.bin differs (mount)" >&2
    # 1b. The same file through a full restore.
    settle; : > "$FTP_DIR/xferlog"; t0=$(now)
    "$BIN" restore "$URL" "$WORK/restored.raw" 2>/dev/null
    dev=$(losetup -o $((1 << 20)) --sizelimit "$SIZE" -r --find --show "$WORK/restored.raw")
    mount -o ro "$dev" "$WORK/fs"; cp "$WORK/fs/one.bin" "$WORK/one.copy"; unmount "$WORK/fs"; losetup -d "$dev"
    one_restore+=("$(python3 -c "print($(now) - $t0)")"); one_restore_bytes+=("$(sent)")
    rm -f "$WORK/restored.raw"
    # 2. Sequential reads (ddz -d, then the local mount, then over FTP).
    settle; read -r w c < <(timed "$BIN" ddz -d "$WORK/disk.lzo"); seq_ddz+=("$w"); cpu_ddz+=("$c")
    settle; read -r w c < <(seq_read "$WORK/disk.lzo"); seq_local+=("$w"); cpu_local+=("$c")
    settle; read -r w c < <(seq_read "$URL"); seq_ftp+=("$w"); cpu_ftp+=("$c")
    # 3. Random 4 KiB reads, O_DIRECT: cold on a fresh mount, then the same offsets.
    settle; "$BIN" mount "$WORK/disk.lzo" "$WORK/mnt"
    read -r cold warm < <(python3 - "$WORK/mnt/disk.img" <<'EOF'
import mmap, os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
size = os.fstat(fd).st_size
buf = mmap.mmap(-1, 4096)
offsets = [random.Random(7).randrange(size // 4096) * 4096 for _ in range(400)]
rates = []
for _ in range(2):
    t = time.monotonic()
    for o in offsets: os.preadv(fd, [buf], o)
    rates.append(len(offsets) / (time.monotonic() - t))
print(f"{rates[0]:.0f} {rates[1]:.0f}")
EOF
)
    rnd_cold+=("$cold"); rnd_warm+=("$warm")
    unmount "$WORK/mnt"
done

M1=$(median "${one_mount[@]}"); B1=$(median "${one_mount_bytes[@]}")
M2=$(median "${one_restore[@]}"); B2=$(median "${one_restore_bytes[@]}")
SD=$(median "${seq_ddz[@]}"); SL=$(median "${seq_local[@]}"); SF=$(median "${seq_ftp[@]}")
CD=$(median "${cpu_ddz[@]}"); CL=$(median "${cpu_local[@]}"); CF=$(median "${cpu_ftp[@]}")
python3 - "$SIZE" "$IMAGE" "$M1" "$B1" "$M2" "$B2" "$SD" "$SL" "$SF" "$CD" "$CL" "$CF" \
    "$(median "${rnd_cold[@]}")" "$(median "${rnd_warm[@]}")" "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import sys
size, image, m1, b1, m2, b2, sd, sl, sf, cd, cl, cf, cold, warm, runs = (float(x) for x in sys.argv[1:16])
load = sys.argv[16]
mib = (size + (2 << 20)) / 1048576
print(f"\none 8 MiB file back (medians):")
print(f"  mount over FTP + loop mount + cp   {m1:7.2f} s  {b1 / 1e6:9.1f} MB sent ({100 * b1 / image:.1f}% of the image)")
print(f"  restore + loop mount + cp          {m2:7.2f} s  {b2 / 1e6:9.1f} MB sent   mount is x{m2 / m1:.1f} faster, x{b2 / max(b1, 1):.0f} fewer bytes")
print(f"\nsequential read of the whole disk ({mib:.0f} MiB, medians of {runs:.0f}; .lzo cached on every side):")
print(f"  ddz -d > /dev/null                 {sd:7.2f} s  {mib / sd:7.0f} MiB/s                             cpu {cd:5.2f} s")
print(f"  dd disk.img (local mount)          {sl:7.2f} s  {mib / sl:7.0f} MiB/s  x{sd / sl:.2f} of ddz -d (goal >= 0.7)  cpu {cl:5.2f} s (dd + mount)")
print(f"  dd disk.img (mount over FTP)       {sf:7.2f} s  {mib / sf:7.0f} MiB/s  x{sd / sf:.2f} of ddz -d (goal >= 0.7)  cpu {cf:5.2f} s (dd + mount)")
print(f"\nrandom 4 KiB reads (O_DIRECT, local image, medians): cold {cold:.0f}/s, cached {warm:.0f}/s")
print(f"load average at the end: {load}")
EOF
