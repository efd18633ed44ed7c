#!/usr/bin/env bash
# Starts a private vsftpd for tests and benchmarks (needs root):
# 127.0.0.1 (or ::1 with --ipv6) on a free port, a local user with a
# password, a temporary home, passive ports from a random range, anonymous
# read-only access to DIR/anon. Prints shell assignments:
#   FTP_DIR FTP_HOST FTP_PORT FTP_USER FTP_PASS FTP_HOME FTP_ANON FTP_PID
# (use: eval "$(scripts/vsftpd-start.sh)"; ... ; scripts/vsftpd-stop.sh "$FTP_DIR").
# The server runs in the foreground of a background job; vsftpd-stop.sh
# (or ftpd-stop.sh) kills it and removes the directory. Never listens
# outside loopback. Options: those of ftpd-common.sh (--ipv6, --dir-base,
# --home-size, --max-rate).
set -euo pipefail
ftpd_name=vsftpd
. "$(dirname "$0")/ftpd-common.sh"
ftpd_extra_option() { return 1; }
ftpd_parse_options "$@"
ftpd_close_inherited_fds
[ "$(id -u)" = 0 ] || { echo "vsftpd-start.sh: needs root (vsftpd, useradd)" >&2; exit 77; }
vsftpd=/usr/sbin/vsftpd
[ -x "$vsftpd" ] || { echo "vsftpd-start.sh: $vsftpd is not installed" >&2; exit 77; }
ftpd_ensure_user
mkdir -p /var/run/vsftpd/empty
ftpd_make_dir

rate=
[ -n "$max_rate" ] && rate="local_max_rate=$max_rate"
host="$(ftpd_host)"
for attempt in 1 2 3 4 5; do
    port="$(ftpd_free_port)"
    pasv=$((20000 + RANDOM % 40000))
    if ((ipv6)); then
        listen="listen=NO
listen_ipv6=YES
listen_address6=::1"
    else
        listen="listen=YES
listen_ipv6=NO
listen_address=127.0.0.1"
    fi
    cat >"$dir/vsftpd.conf" <<CONF
$listen
listen_port=$port
background=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root=$home
anonymous_enable=YES
anon_root=$anon
no_anon_password=YES
anon_upload_enable=NO
pam_service_name=vsftpd
userlist_enable=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
pasv_enable=YES
pasv_min_port=$pasv
pasv_max_port=$((pasv + 99))
secure_chroot_dir=/var/run/vsftpd/empty
xferlog_enable=NO
syslog_enable=NO
vsftpd_log_file=$dir/vsftpd.log
dual_log_enable=NO
ftpd_banner=rescuebox test vsftpd
max_clients=200
max_per_ip=200
$rate
CONF
    "$vsftpd" "$dir/vsftpd.conf" >"$dir/stderr" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/vsftpd.pid"
    if ftpd_wait_banner "$host" "$port" "$pid"; then
        ftpd_started "$host" "$port" "$pid"
        exit 0
    fi
    ftpd_stop_pid "$pid"
done
echo "vsftpd-start.sh: vsftpd did not start: $(cat "$dir/stderr")" >&2
ftpd_remove_dir
exit 1
