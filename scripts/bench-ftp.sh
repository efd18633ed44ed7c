#!/usr/bin/env bash
# FTP throughput benchmark: rescuebox ftpput/ftpget side by side with
# `curl -T` / `curl` and busybox ftpput/ftpget, against the same private
# vsftpd on 127.0.0.1 (started here, stopped after). Prints medians of
# wall time, throughput, client CPU (user+sys) and ratios vs curl.
# Never asserts. Needs root (vsftpd). Scale with:
#   BENCH_FTP_MB=1024  data size in MiB      BENCH_RUNS=3  repetitions
#   RESCUEBOX_BIN=...  binary (default dist/rescuebox, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
mb="${BENCH_FTP_MB:-1024}"
runs="${BENCH_RUNS:-3}"
bin="${RESCUEBOX_BIN:-$PWD/dist/rescuebox}"
[ "$(id -u)" = 0 ] || { echo "bench-ftp.sh: needs root (starts vsftpd)"; exit 0; }
[ -x "$bin" ] || ./build-static.sh >/dev/null
for tool in curl busybox python3; do
    command -v "$tool" >/dev/null || { echo "bench-ftp.sh: $tool missing, skipping"; exit 0; }
done

eval "$(scripts/vsftpd-start.sh)"
work="$(mktemp -d /var/tmp/bench-ftp.XXXXXX)"
trap 'scripts/vsftpd-stop.sh "$FTP_DIR"; rm -rf "$work"' EXIT
src="$work/data.bin"
# Incompressible data, so nothing anywhere can cheat.
head -c "$((mb * 1048576))" /dev/urandom >"$src"
cp "$src" "$FTP_HOME/down.bin"
chown "$FTP_USER" "$FTP_HOME/down.bin"
url="ftp://$FTP_USER:$FTP_PASS@127.0.0.1:$FTP_PORT"
export FTP_PASSWORD="$FTP_PASS"

# measure CMD... -> "wall user sys" of the command and all its children.
measure() {
    python3 - "$@" <<'PY'
import os, resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(["/bin/sh", "-c", sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.4f %.4f %.4f %d" % (wall, ru.ru_utime, ru.ru_stime, rc))
PY
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A wall cpu
bench() { # NAME CMD
    local name="$1" cmd="$2" walls=() cpus=() out
    for _ in $(seq 1 "$runs"); do
        rm -f "$FTP_HOME"/up-* 2>/dev/null || true
        sync
        out="$(measure "$cmd")"
        read -r w u s rc <<<"$out"
        if [ "$rc" != 0 ]; then echo "  $name: FAILED (exit $rc)"; return; fi
        walls+=("$w"); cpus+=("$(echo "$u $s" | awk '{print $1+$2}')")
    done
    wall[$name]="$(printf '%s\n' "${walls[@]}" | median)"
    cpu[$name]="$(printf '%s\n' "${cpus[@]}" | median)"
}

report() { # TITLE BASELINE NAMES...
    local title="$1" base="$2"; shift 2
    printf '\n%s (%d MiB, median of %d)\n' "$title" "$mb" "$runs"
    printf '  %-26s %9s %10s %9s %12s %10s\n' tool "wall s" "MB/s" "CPU s" "speed/curl" "CPU/curl"
    for n in "$@"; do
        [ -n "${wall[$n]:-}" ] || continue
        awk -v n="$n" -v w="${wall[$n]}" -v c="${cpu[$n]}" -v bw="${wall[$base]:-0}" -v bc="${cpu[$base]:-0}" -v mb="$mb" \
            'BEGIN { r = (bw > 0 ? bw / w : 0); q = (bc > 0 ? c / bc : 0);
                     printf "  %-26s %9.3f %10.1f %9.3f %11.2fx %9.2fx\n", n, w, mb * 1.048576 / w, c, r, q }'
    done
}

echo "bench-ftp.sh: vsftpd on 127.0.0.1:$FTP_PORT, $mb MiB of random data, $runs runs, $(nproc) CPUs"
bench "rescuebox ftpput FILE" "'$bin' ftpput -u $FTP_USER 127.0.0.1:$FTP_PORT up-rb $src"
bench "curl -T FILE" "curl -sS -T $src $url/up-curl"
bench "busybox ftpput FILE" "busybox ftpput -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 up-bb $src"
report "Upload from a file" "curl -T FILE" "rescuebox ftpput FILE" "curl -T FILE" "busybox ftpput FILE"

bench "rescuebox ftpput (pipe)" "cat $src | '$bin' ftpput -u $FTP_USER 127.0.0.1:$FTP_PORT up-rb -"
bench "curl -T - (pipe)" "cat $src | curl -sS -T - $url/up-curl"
bench "busybox ftpput (pipe)" "cat $src | busybox ftpput -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 up-bb -"
report "Upload from a pipe (cat's CPU included for all)" "curl -T - (pipe)" \
    "rescuebox ftpput (pipe)" "curl -T - (pipe)" "busybox ftpput (pipe)"

bench "rescuebox ftpget" "'$bin' ftpget -u $FTP_USER 127.0.0.1:$FTP_PORT $work/got-rb down.bin"
bench "curl" "curl -sS -o $work/got-curl $url/down.bin"
bench "busybox ftpget" "busybox ftpget -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 $work/got-bb down.bin"
report "Download to a file" "curl" "rescuebox ftpget" "curl" "busybox ftpget"
rm -f "$work"/got-*

bench "rescuebox ftpget -" "'$bin' ftpget -u $FTP_USER 127.0.0.1:$FTP_PORT - down.bin >/dev/null"
bench "curl >/dev/null" "curl -sS $url/down.bin >/dev/null"
bench "busybox ftpget -" "busybox ftpget -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 - down.bin >/dev/null"
report "Download to stdout (/dev/null)" "curl >/dev/null" "rescuebox ftpget -" "curl >/dev/null" "busybox ftpget -"
