#!/usr/bin/env bash
# Stops a server started by scripts/{vsftpd,proftpd,pureftpd}-start.sh:
# its session processes (the listener's descendants), then the listener;
# unmounts a --home-size tmpfs and removes the directory.
# Usage: ftpd-stop.sh FTP_DIR
set -uo pipefail
dir="${1:?usage: ftpd-stop.sh FTP_DIR}"
case "$dir" in
    */rescuebox-vsftpd.*|*/rescuebox-proftpd.*|*/rescuebox-pureftpd.*) ;;
    *) echo "ftpd-stop.sh: $dir is not a directory of an ftpd start script" >&2; exit 2 ;;
esac
pidfile="$dir/listener.pid"
[ -f "$pidfile" ] || pidfile="$dir/vsftpd.pid"

descendants() {
    local child
    for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# Running (a zombie is not: the listener's parent, init, reaps it late).
alive() {
    local state
    state="$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ]
}

if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    # Only the listener we started: the program recorded beside its pid.
    exe="$(cat "$dir/listener.exe" 2>/dev/null || echo /usr/sbin/vsftpd)"
    if [ "$(readlink /proc/"$pid"/exe 2>/dev/null)" = "$exe" ]; then
        sessions="$(descendants "$pid")"
        kill "$pid" 2>/dev/null
        [ -n "$sessions" ] && kill -9 $sessions 2>/dev/null
        for _ in $(seq 1 250); do alive "$pid" || break; sleep 0.02; done
        kill -9 "$pid" 2>/dev/null
    fi
fi
if mountpoint -q "$dir/home" 2>/dev/null; then umount -l "$dir/home"; fi
rm -rf "$dir"
