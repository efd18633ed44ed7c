# Shared by scripts/{vsftpd,proftpd,pureftpd}-start.sh (sourced, not run):
# options, the test user, the temporary directory and home, a free port,
# waiting for the banner, and the assignments the start scripts print.
#
# Options every start script takes:
#   --ipv6              listen on ::1 instead of 127.0.0.1
#   --dir-base DIR      where the temporary directory goes (default /var/tmp)
#   --home-size SIZE    the home is a tmpfs of SIZE (e.g. 2M): the server's
#                       disk fills up (a full-disk test)
#   --max-rate BYTES    limit every transfer to about BYTES per second
#                       (so a test can act mid-transfer)
# Server-specific options are passed to the script's own parser
# (ftpd_extra_option NAME [VALUE]; it returns 1 for an unknown option).

ftpd_name="${ftpd_name:?set ftpd_name before sourcing ftpd-common.sh}"
ipv6=0
base=/var/tmp
home_size=
max_rate=

ftpd_parse_options() {
    while (($#)); do
        case "$1" in
            --ipv6) ipv6=1 ;;
            --dir-base) base="$2"; shift ;;
            --home-size) home_size="$2"; shift ;;
            --max-rate) max_rate="$2"; shift ;;
            *)
                if ! ftpd_extra_option "$@"; then
                    echo "$ftpd_name-start.sh: unknown option $1" >&2; exit 2
                fi
                shift "$ftpd_shift"
                continue ;;
        esac
        shift
    done
}

# Descriptors inherited from the caller (a test harness's pipes) must not
# stay open in the long-running server, or the caller never sees EOF.
ftpd_close_inherited_fds() {
    local fd
    for fd in $(ls /proc/$$/fd); do
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# The local test user (the same one for every server), with a password.
user=rbftp
pass=rb-ftp-test-pw
ftpd_ensure_user() {
    [ "$(id -u)" = 0 ] || { echo "$ftpd_name-start.sh: needs root (the server, useradd)" >&2; exit 77; }
    if ! id "$user" >/dev/null 2>&1; then
        useradd -M -d / -s /bin/sh "$user" 2>/dev/null || id "$user" >/dev/null
    fi
    [ "$(getent passwd "$user" | cut -d: -f6)" = / ] || usermod -d / "$user"
    echo "$user:$pass" | chpasswd
    if [ -f /etc/ftpusers ] && grep -qx "$user" /etc/ftpusers; then
        sed -i "/^$user\$/d" /etc/ftpusers
    fi
    uid="$(id -u "$user")"
    gid="$(id -g "$user")"
}

# DIR (the temporary directory) with DIR/home, the user's, and DIR/anon.
ftpd_make_dir() {
    dir="$(mktemp -d "$base/rescuebox-$ftpd_name.XXXXXX")"
    chmod 755 "$dir"
    home="$dir/home"
    anon="$dir/anon"
    mkdir -p "$home" "$anon"
    if [ -n "$home_size" ]; then
        mount -t tmpfs -o "size=$home_size,mode=755" rescuebox-ftp-home "$home" || {
            echo "$ftpd_name-start.sh: cannot mount a $home_size tmpfs on $home" >&2; rm -rf "$dir"; exit 1; }
    fi
    chown "$user:" "$home"
    chmod 755 "$anon"
}

ftpd_remove_dir() {
    if mountpoint -q "$home" 2>/dev/null; then umount -l "$home"; fi
    rm -rf "$dir"
}

ftpd_host() { if ((ipv6)); then echo ::1; else echo 127.0.0.1; fi; }

ftpd_free_port() {
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_INET6 if sys.argv[1]=="1" else socket.AF_INET)
s.bind(("::1" if sys.argv[1]=="1" else "127.0.0.1",0)); print(s.getsockname()[1])' "$ipv6"
}

# Waits until HOST PORT sends a 220 banner (0), or the process PID died or
# 10 s passed (1). Polls every 20 ms; the server's start-up decides how long.
# A fourth argument `tls` reads the banner inside TLS (implicit FTPS; the
# certificate is not checked: this only waits for the server).
ftpd_wait_banner() {
    python3 - "$1" "$2" "$3" "${4:-}" <<'PY'
import os, socket, ssl, sys, time
host, port, pid, tls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "tls"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                sys.exit(1)
    except (OSError, IndexError):
        sys.exit(1)
    try:
        plain = socket.create_connection((host, port), timeout=1)
        with (ctx.wrap_socket(plain) if tls else plain) as s:
            if s.recv(100).startswith(b"220"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.02)
sys.exit(1)
PY
}

# Records the listener for ftpd-stop.sh and prints the assignments.
ftpd_started() {
    local host="$1" port="$2" pid="$3"
    echo "$pid" >"$dir/listener.pid"
    readlink "/proc/$pid/exe" >"$dir/listener.exe"
    printf 'FTP_DIR=%q\nFTP_HOST=%q\nFTP_PORT=%q\nFTP_USER=%q\nFTP_PASS=%q\nFTP_HOME=%q\nFTP_ANON=%q\nFTP_PID=%q\n' \
        "$dir" "$host" "$port" "$user" "$pass" "$home" "$anon" "$pid"
}

ftpd_stop_pid() {
    local pid="$1"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
