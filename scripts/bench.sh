#!/usr/bin/env bash
# Runs every benchmark side by side with the tools users would otherwise run
# (lzop, dd, curl, busybox, tnftp) and prints medians and ratios. It never
# asserts: speed targets are read, not tested. Needs root for loop devices and
# the local vsftpd; builds dist/rescuebox first.
#   scripts/bench.sh            all areas
#   scripts/bench.sh ddz ftp    some (ddz, ddz-decompress, ftp, zerofill, backup, used, sha256, mount)
# Sizes scale with BENCH_SIZE_MB (see each scripts/bench-AREA.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x dist/rescuebox ] || ./build-static.sh >/dev/null
command -v hyperfine >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
areas=("$@")
((${#areas[@]})) || areas=(ddz ddz-decompress ftp zerofill backup used sha256 mount)
for area in "${areas[@]}"; do
    script="scripts/bench-$area.sh"
    if [ -x "$script" ]; then
        echo "=== $area"
        "$script" || echo "bench.sh: $script failed (status $?)"
    else
        echo "=== $area: no $script yet"
    fi
done
