#!/usr/bin/env bash
# Starts a private pure-ftpd for tests (needs root), in the foreground of a
# background job, configured by its command-line options only: 127.0.0.1
# (or ::1 with --ipv6) and a free port, a passive port range, no anonymous
# login, the virtual user rbftp (PureDB, mapped to the local user's uid)
# chrooted into a temporary home, no syslog. Debian's pure-ftpd, unpacked by
# scripts/ftpd-unpack.sh (it conflicts with vsftpd as an installed package).
# Prints FTP_DIR FTP_HOST FTP_PORT FTP_USER FTP_PASS FTP_HOME FTP_ANON FTP_PID
# (use: eval "$(scripts/pureftpd-start.sh)"; ...; scripts/ftpd-stop.sh "$FTP_DIR").
# Options: those of ftpd-common.sh.
set -euo pipefail
ftpd_name=pureftpd
. "$(dirname "$0")/ftpd-common.sh"
ftpd_extra_option() { return 1; }
ftpd_parse_options "$@"
ftpd_close_inherited_fds
root="${RESCUEBOX_FTPD_ROOT:-/opt/rescuebox-ftpd}"
pureftpd="$root/pure-ftpd/usr/sbin/pure-ftpd"
purepw="$root/pure-ftpd/usr/bin/pure-pw"
[ -x "$pureftpd" ] || { echo "pureftpd-start.sh: $pureftpd is not unpacked (scripts/ftpd-unpack.sh)" >&2; exit 77; }
ftpd_ensure_user
ftpd_make_dir

# PureDB's text form: NAME:HASH:UID:GID:GECOS:HOME/./ (the /./ chroots).
echo "$user:$(openssl passwd -6 "$pass"):$uid:$gid::$home/./::::::::::::" >"$dir/pureftpd.passwd"
"$purepw" mkdb "$dir/pureftpd.pdb" -f "$dir/pureftpd.passwd" >/dev/null

rate=()
if [ -n "$max_rate" ]; then
    # -T upload:download bandwidth, KiB/s.
    kib=$(( (max_rate + 1023) / 1024 ))
    rate=(-T "$kib:$kib")
fi
host="$(ftpd_host)"
for attempt in 1 2 3 4 5; do
    port="$(ftpd_free_port)"
    pasv=$((20000 + RANDOM % 40000))
    "$pureftpd" -S "$host,$port" -p "$pasv:$((pasv + 99))" -l "puredb:$dir/pureftpd.pdb" \
        -E -A -H -f none -u 1 -c 200 -C 200 -U 133:022 "${rate[@]}" \
        >"$dir/stderr" 2>&1 &
    pid=$!
    if ftpd_wait_banner "$host" "$port" "$pid"; then
        ftpd_started "$host" "$port" "$pid"
        exit 0
    fi
    ftpd_stop_pid "$pid"
done
echo "pureftpd-start.sh: pure-ftpd did not start: $(tr '\n' ' ' <"$dir/stderr")" >&2
ftpd_remove_dir
exit 1
