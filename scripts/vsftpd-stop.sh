#!/usr/bin/env bash
# Stops a vsftpd started by vsftpd-start.sh and removes its directory.
# Usage: vsftpd-stop.sh FTP_DIR
set -uo pipefail
dir="${1:?usage: vsftpd-stop.sh FTP_DIR}"
case "$dir" in */rescuebox-vsftpd.*) ;; *) echo "vsftpd-stop.sh: $dir is not a vsftpd-start.sh directory" >&2; exit 2 ;; esac
if [ -f "$dir/vsftpd.pid" ]; then
    pid="$(cat "$dir/vsftpd.pid")"
    # Only the listener we started (its children, the sessions, end with it).
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = vsftpd ]; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    fi
fi
rm -rf "$dir"
