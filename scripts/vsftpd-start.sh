#!/usr/bin/env bash
# Starts a private vsftpd for tests and benchmarks (needs root):
# 127.0.0.1 (or ::1 with --ipv6) on a free port, a local user with a
# password, a temporary home, passive ports from a random range, anonymous
# read-only access to DIR/anon. Prints shell assignments:
#   FTP_DIR FTP_HOST FTP_PORT FTP_USER FTP_PASS FTP_HOME FTP_ANON FTP_PID
# (use: eval "$(scripts/vsftpd-start.sh)"; ... ; scripts/vsftpd-stop.sh "$FTP_DIR").
# TLS: --tls-cert FILE --tls-key FILE turns on ssl_enable=YES (explicit
# AUTH TLS, require_ssl_reuse=YES as vsftpd's default); --tls-implicit makes
# it implicit_ssl=YES; --tls-force adds force_local_logins_ssl and
# force_local_data_ssl. --tls alone makes a throwaway self-signed
# certificate for localhost/127.0.0.1 with openssl req (FTP_CERT).
# The server runs in the foreground of a background job; vsftpd-stop.sh
# kills it and removes the directory. Never listens outside loopback.
set -euo pipefail
ipv6=0
base=/var/tmp
tls=0 cert= key= implicit=NO force=NO
while (($#)); do
    case "$1" in
        --ipv6) ipv6=1 ;;
        --dir-base) base="$2"; shift ;;
        --tls) tls=1 ;;
        --tls-cert) tls=1; cert="$2"; shift ;;
        --tls-key) tls=1; key="$2"; shift ;;
        --tls-implicit) tls=1; implicit=YES ;;
        --tls-force) tls=1; force=YES ;;
        *) echo "vsftpd-start.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
# Descriptors inherited from the caller (a test harness's pipes) must not
# stay open in the long-running server, or the caller never sees EOF.
for fd in $(ls /proc/$$/fd); do
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
[ "$(id -u)" = 0 ] || { echo "vsftpd-start.sh: needs root (vsftpd, useradd)" >&2; exit 77; }
vsftpd=/usr/sbin/vsftpd
[ -x "$vsftpd" ] || { echo "vsftpd-start.sh: $vsftpd is not installed" >&2; exit 77; }

user=rbftp
pass=rb-ftp-test-pw
if ! id "$user" >/dev/null 2>&1; then
    useradd -M -d / -s /bin/sh "$user" 2>/dev/null || id "$user" >/dev/null
fi
[ "$(getent passwd "$user" | cut -d: -f6)" = / ] || usermod -d / "$user"
echo "$user:$pass" | chpasswd
if [ -f /etc/ftpusers ] && grep -qx "$user" /etc/ftpusers; then
    sed -i "/^$user\$/d" /etc/ftpusers
fi
mkdir -p /var/run/vsftpd/empty

dir="$(mktemp -d "$base/rescuebox-vsftpd.XXXXXX")"
chmod 755 "$dir"
home="$dir/home"
anon="$dir/anon"
mkdir -p "$home" "$anon"
chown "$user:" "$home"
chmod 755 "$anon"

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

free_port() {
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_INET6 if sys.argv[1]=="1" else socket.AF_INET)
s.bind(("::1" if sys.argv[1]=="1" else "127.0.0.1",0)); print(s.getsockname()[1])' "$ipv6"
}

for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    pasv=$((20000 + RANDOM % 40000))
    if ((ipv6)); then
        listen="listen=NO
listen_ipv6=YES
listen_address6=::1"
        host=::1
    else
        listen="listen=YES
listen_ipv6=NO
listen_address=127.0.0.1"
        host=127.0.0.1
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
$tlsconf
CONF
    "$vsftpd" "$dir/vsftpd.conf" >"$dir/stderr" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/vsftpd.pid"
    # Wait until it answers (or died: port taken, bad config).
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        if python3 - "$host" "$port" "$implicit" <<'PY' 2>/dev/null; then
import socket, ssl, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
if sys.argv[3] == "YES":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s)
sys.exit(0 if s.recv(100).startswith(b"220") else 1)
PY
            printf 'FTP_DIR=%q\nFTP_HOST=%q\nFTP_PORT=%q\nFTP_USER=%q\nFTP_PASS=%q\nFTP_HOME=%q\nFTP_ANON=%q\nFTP_PID=%q\nFTP_CERT=%q\n' \
                "$dir" "$host" "$port" "$user" "$pass" "$home" "$anon" "$pid" "$cert"
            exit 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
echo "vsftpd-start.sh: vsftpd did not start: $(cat "$dir/stderr")" >&2
rm -rf "$dir"
exit 1
