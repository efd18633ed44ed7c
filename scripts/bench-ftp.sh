#!/usr/bin/env bash
# FTP throughput benchmark: rescuebox ftpput/ftpget side by side with
# `curl -T` / `curl` and busybox ftpput/ftpget, against the same private
# vsftpd on 127.0.0.1 whose root is a tmpfs (/dev/shm: a disk-rooted server
# measures the server's disk), started here, stopped after. Then the same
# with TLS (--tls against curl --ssl-reqd, self-signed certificate trusted
# with --cacert on both). Prints medians of wall time, throughput, client
# CPU (user+sys) and ratios vs curl. Never asserts. Needs root (vsftpd).
#   BENCH_FTP_TLS=0    skip the TLS round      BENCH_FTP_ROOT=/var/tmp  disk-rooted server
# Scale with:
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

root="${BENCH_FTP_ROOT:-/dev/shm}"
work="$(mktemp -d /var/tmp/bench-ftp.XXXXXX)"
servers=()
trap 'for d in "${servers[@]}"; do scripts/vsftpd-stop.sh "$d"; done; rm -rf "$work"' EXIT
src="$work/data.bin"
# Incompressible data, so nothing anywhere can cheat.
head -c "$((mb * 1048576))" /dev/urandom >"$src"
# The source is read from the page cache (warm it; the server root is RAM).
cat "$src" >/dev/null

# measure CMD [PRODUCER] -> "wall cpu own rc": wall time, CPU (user+sys) of
# the command and all its children, and with PRODUCER (a command whose
# stdout is piped into CMD, like `cat FILE |`) the CPU of CMD alone ("own",
# else the same as cpu): the producer costs every client the same.
measure() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, time
cmd, producer = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
null = subprocess.DEVNULL
t = time.monotonic()
feeder = subprocess.Popen(["/bin/sh", "-c", producer], stdout=subprocess.PIPE, stderr=null) if producer else None
client = subprocess.Popen(["/bin/sh", "-c", cmd], stdin=feeder.stdout if feeder else null, stdout=null, stderr=null)
if feeder: feeder.stdout.close()
_, status, own = os.wait4(client.pid, 0)
client.returncode = os.waitstatus_to_exitcode(status)
fed = 0.0
if feeder:
    _, _, ru = os.wait4(feeder.pid, 0)
    feeder.returncode = 0
    fed = ru.ru_utime + ru.ru_stime
wall = time.monotonic() - t
mine = own.ru_utime + own.ru_stime
print("%.4f %.4f %.4f %d" % (wall, mine + fed, mine, client.returncode))
PY
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A wall cpu own
# Runs each command once per round, the tools interleaved (so a noisy
# neighbour hits all of them alike); medians over the rounds. With
# producer set, every command reads its stdout (see measure).
producer=""
bench() { # NAME=CMD...
    local pair name cmd out r
    declare -A walls cpus owns
    for r in $(seq 1 "$runs"); do
        for pair in "$@"; do
            name="${pair%%=*}" cmd="${pair#*=}"
            rm -f "$FTP_HOME"/up-* 2>/dev/null || true
            # The last command's writeback (downloads to the disk) must not
            # slow down the next one: every run starts with nothing dirty.
            sync
            out="$(measure "$cmd" ${producer:+"$producer"})"
            read -r w c o rc <<<"$out"
            if [ "$rc" != 0 ]; then echo "  $name: FAILED (exit $rc)"; continue; fi
            walls[$name]+="$w "; cpus[$name]+="$c "; owns[$name]+="$o "
        done
    done
    for pair in "$@"; do
        name="${pair%%=*}"
        [ -n "${walls[$name]:-}" ] || continue
        wall[$name]="$(printf '%s\n' ${walls[$name]} | median)"
        cpu[$name]="$(printf '%s\n' ${cpus[$name]} | median)"
        own[$name]="$(printf '%s\n' ${owns[$name]} | median)"
    done
}

report() { # TITLE BASELINE NAMES...   (with producer set: the client's own CPU too)
    local title="$1" base="$2"; shift 2
    printf '\n%s (%d MiB, median of %d)\n' "$title" "$mb" "$runs"
    local extra=""
    [ -z "$producer" ] || extra="$(printf ' %9s %10s' "own CPU" "own/curl")"
    printf '  %-30s %9s %10s %9s %12s %10s%s\n' tool "wall s" "MB/s" "CPU s" "speed/curl" "CPU/curl" "$extra"
    for n in "$@"; do
        [ -n "${wall[$n]:-}" ] || continue
        awk -v n="$n" -v w="${wall[$n]}" -v c="${cpu[$n]}" -v o="${own[$n]}" -v bw="${wall[$base]:-0}" -v bc="${cpu[$base]:-0}" \
            -v bo="${own[$base]:-0}" -v mb="$mb" -v piped="${producer:+1}" \
            'BEGIN { r = (bw > 0 ? bw / w : 0); q = (bc > 0 ? c / bc : 0); p = (bo > 0 ? o / bo : 0);
                     printf "  %-30s %9.3f %10.1f %9.3f %11.2fx %9.2fx", n, w, mb * 1.048576 / w, c, r, q;
                     if (piped) printf " %9.3f %9.2fx", o, p;
                     printf "\n" }'
    done
}

start_server() { # vsftpd-start.sh options
    eval "$(scripts/vsftpd-start.sh --dir-base "$root" "$@")"
    servers+=("$FTP_DIR")
    cp "$src" "$FTP_HOME/down.bin"
    chown "$FTP_USER" "$FTP_HOME/down.bin"
    url="ftp://$FTP_USER:$FTP_PASS@127.0.0.1:$FTP_PORT"
    export FTP_PASSWORD="$FTP_PASS"
}

start_server
echo "bench-ftp.sh: vsftpd on 127.0.0.1:$FTP_PORT rooted in $root ($(stat -f -c %T "$FTP_HOME")), $mb MiB of random data, $runs runs, $(nproc) CPUs"
rb="'$bin' ftpput -u $FTP_USER 127.0.0.1:$FTP_PORT"
# To 127.0.0.1 ftpput copies through a buffer (zero-copy makes the server on
# the same host slower); the zero-copy rows (RESCUEBOX_ZERO_COPY=always, what
# a server on another host gets) show the trade: less client CPU, more server
# CPU, and the server is the bottleneck here.
zc="RESCUEBOX_ZERO_COPY=always"
bench "rescuebox ftpput FILE=$rb up-rb $src" "curl -T FILE=curl -sS -T $src $url/up-curl" \
      "busybox ftpput FILE=busybox ftpput -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 up-bb $src" \
      "rescuebox FILE (zero-copy)=$zc $rb up-rb $src"
report "Upload from a file" "curl -T FILE" "rescuebox ftpput FILE" "curl -T FILE" "busybox ftpput FILE" \
    "rescuebox FILE (zero-copy)"

# From `cat FILE |`: CPU with cat's included, and each client's own.
producer="cat $src"
bench "rescuebox ftpput (pipe)=$rb up-rb -" "curl -T - (pipe)=curl -sS -T - $url/up-curl" \
      "busybox ftpput (pipe)=busybox ftpput -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 up-bb -" \
      "rescuebox pipe (zero-copy)=$zc $rb up-rb -"
report "Upload from a pipe (cat FILE |; CPU with cat's, own CPU without)" "curl -T - (pipe)" \
    "rescuebox ftpput (pipe)" "curl -T - (pipe)" "busybox ftpput (pipe)" "rescuebox pipe (zero-copy)"
producer=""

bench "rescuebox ftpget='$bin' ftpget -u $FTP_USER 127.0.0.1:$FTP_PORT $work/got-rb down.bin" \
      "curl=curl -sS -o $work/got-curl $url/down.bin" \
      "busybox ftpget=busybox ftpget -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 $work/got-bb down.bin"
report "Download to a file" "curl" "rescuebox ftpget" "curl" "busybox ftpget"
rm -f "$work"/got-*

bench "rescuebox ftpget -='$bin' ftpget -u $FTP_USER 127.0.0.1:$FTP_PORT - down.bin >/dev/null" \
      "curl >/dev/null=curl -sS $url/down.bin >/dev/null" \
      "busybox ftpget -=busybox ftpget -u $FTP_USER -p $FTP_PASS -P $FTP_PORT 127.0.0.1 - down.bin >/dev/null"
report "Download to stdout (/dev/null)" "curl >/dev/null" "rescuebox ftpget -" "curl >/dev/null" "busybox ftpget -"

[ "${BENCH_FTP_TLS:-1}" = 1 ] || exit 0
start_server --tls
echo
echo "bench-ftp.sh: TLS: vsftpd on 127.0.0.1:$FTP_PORT (ssl_enable, require_ssl_reuse), rescuebox --tls, curl --ssl-reqd"
rbt="'$bin' ftpput --tls --cacert $FTP_CERT -u $FTP_USER 127.0.0.1:$FTP_PORT"
ct="curl -sS --ssl-reqd --cacert $FTP_CERT"
bench "rescuebox ftpput --tls FILE=$rbt up-rb $src" "curl --ssl-reqd -T FILE=$ct -T $src $url/up-curl" \
      "rescuebox --tls-control-only=$rbt --tls-control-only up-rb $src"
report "TLS upload from a file" "curl --ssl-reqd -T FILE" "rescuebox ftpput --tls FILE" "curl --ssl-reqd -T FILE" "rescuebox --tls-control-only"
producer="cat $src"
bench "rescuebox --tls (pipe)=$rbt up-rb -" "curl --ssl-reqd -T - (pipe)=$ct -T - $url/up-curl"
report "TLS upload from a pipe (cat FILE |)" "curl --ssl-reqd -T - (pipe)" "rescuebox --tls (pipe)" "curl --ssl-reqd -T - (pipe)"
producer=""
bench "rescuebox ftpget --tls -='$bin' ftpget --tls --cacert $FTP_CERT -u $FTP_USER 127.0.0.1:$FTP_PORT - down.bin >/dev/null" \
      "curl --ssl-reqd >/dev/null=$ct $url/down.bin >/dev/null"
report "TLS download to stdout (/dev/null)" "curl --ssl-reqd >/dev/null" "rescuebox ftpget --tls -" "curl --ssl-reqd >/dev/null"
