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
# TLS: --tls-cert FILE --tls-key FILE turns on ssl_enable=YES (explicit
# AUTH TLS, require_ssl_reuse=YES as vsftpd's default); --tls-implicit makes
# it implicit_ssl=YES; --tls-force adds force_local_logins_ssl and
# force_local_data_ssl. --tls alone makes a throwaway self-signed
# certificate for localhost/127.0.0.1/::1 with openssl req. With TLS it
# also prints FTP_CERT (the certificate to trust).
set -euo pipefail
ftpd_name=vsftpd
. "$(dirname "$0")/ftpd-common.sh"
tls=0 cert= key= implicit=NO force=NO
ftpd_extra_option() {
    ftpd_shift=1
    case "$1" in
        --tls) tls=1 ;;
        --tls-cert) tls=1; cert="$2"; ftpd_shift=2 ;;
        --tls-key) tls=1; key="$2"; ftpd_shift=2 ;;
        --tls-implicit) tls=1; implicit=YES ;;
        --tls-force) tls=1; force=YES ;;
        *) return 1 ;;
    esac
}
ftpd_parse_options "$@"
ftpd_close_inherited_fds
[ "$(id -u)" = 0 ] || { echo "vsftpd-start.sh: needs root (vsftpd, useradd)" >&2; exit 77; }
vsftpd=/usr/sbin/vsftpd
[ -x "$vsftpd" ] || { echo "vsftpd-start.sh: $vsftpd is not installed" >&2; exit 77; }
ftpd_ensure_user
mkdir -p /var/run/vsftpd/empty
ftpd_make_dir

tlsconf="ssl_enable=NO"
if ((tls)); then
    if [ -z "$cert" ]; then
        cert="$dir/cert.pem" key="$dir/key.pem"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$key" -out "$cert" -days 2 -subj /CN=localhost \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" 2>/dev/null
    fi
    [ -n "$key" ] || key="$cert"
    tlsconf="ssl_enable=YES
rsa_cert_file=$cert
rsa_private_key_file=$key
require_ssl_reuse=YES
implicit_ssl=$implicit
force_local_logins_ssl=$force
force_local_data_ssl=$force
allow_anon_ssl=YES
force_anon_logins_ssl=NO
force_anon_data_ssl=NO
ssl_ciphers=HIGH
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO"
fi

# implicit_ssl: the banner comes inside TLS.
wait_banner() { if [ "$implicit" = YES ]; then ftpd_wait_banner "$@" tls; else ftpd_wait_banner "$@"; fi; }

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
$tlsconf
CONF
    "$vsftpd" "$dir/vsftpd.conf" >"$dir/stderr" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/vsftpd.pid"
    if wait_banner "$host" "$port" "$pid"; then
        ftpd_started "$host" "$port" "$pid"
        ((tls)) && printf 'FTP_CERT=%q\n' "$cert"
        exit 0
    fi
    ftpd_stop_pid "$pid"
done
echo "vsftpd-start.sh: vsftpd did not start: $(cat "$dir/stderr")" >&2
ftpd_remove_dir
exit 1
