#!/usr/bin/env bash
# Starts a private proftpd for tests (needs root): `proftpd -n -c CONF` in
# the foreground of a background job, on 127.0.0.1 (or ::1 with --ipv6) and
# a free port, a passive port range, the local user rbftp with a password
# from an AuthUserFile (no PAM, no syslog), chrooted (DefaultRoot) into a
# temporary home. Debian's proftpd-core, unpacked by scripts/ftpd-unpack.sh
# (it conflicts with vsftpd as an installed package).
# Prints FTP_DIR FTP_HOST FTP_PORT FTP_USER FTP_PASS FTP_HOME FTP_ANON FTP_PID
# (use: eval "$(scripts/proftpd-start.sh)"; ...; scripts/ftpd-stop.sh "$FTP_DIR").
# Options: those of ftpd-common.sh, and
#   --deny-size            <Limit SIZE> DenyAll (SIZE answers 550)
#   --allow-store-restart  AllowStoreRestart on (proftpd's default, kept
#                          otherwise, refuses REST before STOR and APPE:
#                          "451 NAME: Append/Restart not permitted, try again")
set -euo pipefail
ftpd_name=proftpd
. "$(dirname "$0")/ftpd-common.sh"
deny_size=0
store_restart=off
ftpd_extra_option() {
    ftpd_shift=1
    case "$1" in
        --deny-size) deny_size=1 ;;
        --allow-store-restart) store_restart=on ;;
        *) return 1 ;;
    esac
}
ftpd_parse_options "$@"
ftpd_close_inherited_fds
root="${RESCUEBOX_FTPD_ROOT:-/opt/rescuebox-ftpd}"
proftpd="$root/proftpd-core/usr/sbin/proftpd"
[ -x "$proftpd" ] || { echo "proftpd-start.sh: $proftpd is not unpacked (scripts/ftpd-unpack.sh)" >&2; exit 77; }
ftpd_ensure_user
ftpd_make_dir

hash="$(openssl passwd -6 "$pass")"
echo "$user:$hash:$uid:$gid::$home:/bin/sh" >"$dir/passwd"
echo "$(id -gn "$user"):x:$gid:" >"$dir/group"
chmod 600 "$dir/passwd" "$dir/group"

limits=
if ((deny_size)); then
    limits="<Limit SIZE>
  DenyAll
</Limit>"
fi
rate=
if [ -n "$max_rate" ]; then
    # TransferRate is in KiB/s.
    rate="TransferRate RETR,STOR,APPE,STOU $(( (max_rate + 1023) / 1024 ))"
fi
host="$(ftpd_host)"
for attempt in 1 2 3 4 5; do
    port="$(ftpd_free_port)"
    pasv=$((20000 + RANDOM % 40000))
    cat >"$dir/proftpd.conf" <<CONF
ServerName "rescuebox test proftpd"
ServerIdent on "rescuebox test proftpd"
ServerType standalone
UseIPv6 on
DefaultAddress $host
SocketBindTight on
Port $port
PassivePorts $pasv $((pasv + 99))
User nobody
Group nogroup
PidFile $dir/proftpd.pid
ScoreboardFile $dir/proftpd.scoreboard
SystemLog $dir/proftpd.log
TransferLog none
WtmpLog off
UseReverseDNS off
UseLastlog off
DelayEngine off
MaxInstances 200
AuthOrder mod_auth_file.c
AuthUserFile $dir/passwd
AuthGroupFile $dir/group
AuthPAM off
RequireValidShell off
DefaultRoot ~
Umask 022
AllowOverwrite on
AllowStoreRestart $store_restart
AllowRetrieveRestart on
$rate
$limits
CONF
    "$proftpd" -n -q -c "$dir/proftpd.conf" >"$dir/stderr" 2>&1 &
    pid=$!
    if ftpd_wait_banner "$host" "$port" "$pid"; then
        ftpd_started "$host" "$port" "$pid"
        exit 0
    fi
    ftpd_stop_pid "$pid"
done
echo "proftpd-start.sh: proftpd did not start: $(tr '\n' ' ' <"$dir/stderr")" >&2
ftpd_remove_dir
exit 1
