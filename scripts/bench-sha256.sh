#!/usr/bin/env bash
# SHA-256 throughput (the manifest's hash): libcrypto's, as rescuebox uses
# now (Sources/RescueCore/SHA256.swift), against the hand-written Swift one it
# replaced (scripts/bench-sha256/PortableSHA256.swift), with sha256sum and
# openssl dgst for reference. Hashes from memory (the tools: from a tmpfs file).
# Medians of BENCH_RUNS (3); size BENCH_SHA_MB (1024 MiB). Never asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
mb="${BENCH_SHA_MB:-1024}"
runs="${BENCH_RUNS:-3}"
work="$(mktemp -d /dev/shm/bench-sha256.XXXXXX 2>/dev/null || mktemp -d)"
trap 'rm -rf "$work"' EXIT
swiftc -O -module-name sha256bench -I Sources/COpenSSL -lcrypto -o "$work/sha256bench" \
    scripts/bench-sha256/main.swift scripts/bench-sha256/PortableSHA256.swift Sources/RescueCore/SHA256.swift
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_of() { python3 -c 'import subprocess,sys,time; t=time.monotonic(); subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,check=True); print("%.4f" % (time.monotonic()-t))' "$@"; }
declare -A secs
for mode in libcrypto portable; do
    secs[$mode]="$(for _ in $(seq 1 "$runs"); do "$work/sha256bench" "$mode" "$mb" | cut -d' ' -f1; done | median)"
done
a="$("$work/sha256bench" libcrypto 3 | cut -d' ' -f2)"; b="$("$work/sha256bench" portable 3 | cut -d' ' -f2)"
[ "$a" = "$b" ] || echo "bench-sha256.sh: the two disagree ($a vs $b)!"
head -c "$((mb * 1048576))" /dev/urandom >"$work/data"
secs[sha256sum]="$(for _ in $(seq 1 "$runs"); do time_of sha256sum "$work/data"; done | median)"
secs[openssl]="$(for _ in $(seq 1 "$runs"); do time_of openssl dgst -sha256 "$work/data"; done | median)"
flags="$(grep -o -w -E 'sha_ni|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
printf 'SHA-256 of %d MiB, median of %d (CPU: %s)\n' "$mb" "$runs" "${flags:-no sha_ni/avx2}"
printf '  %-36s %9s %10s %12s\n' implementation "s" "MB/s" "vs portable"
for n in "rescuebox libcrypto:libcrypto" "rescuebox hand-written (old):portable" "sha256sum (coreutils):sha256sum" "openssl dgst -sha256:openssl"; do
    label="${n%%:*}" key="${n##*:}"
    awk -v l="$label" -v s="${secs[$key]}" -v p="${secs[portable]}" -v mb="$mb" \
        'BEGIN { printf "  %-36s %9.3f %10.1f %11.2fx\n", l, s, mb * 1.048576 / s, p / s }'
done
