#!/usr/bin/env bash
# Unpacks Debian's proftpd-core and pure-ftpd into $RESCUEBOX_FTPD_ROOT
# (default /opt/rescuebox-ftpd/PACKAGE) with `apt-get download` + `dpkg -x`:
# as installed packages they conflict with vsftpd (all three provide
# ftp-server), and the tests run them in the foreground with their own
# configuration anyway. Their shared libraries come from scripts/test.sh's
# package list. Does nothing for a package already unpacked. Needs root.
set -euo pipefail
root="${RESCUEBOX_FTPD_ROOT:-/opt/rescuebox-ftpd}"
declare -A binary=([proftpd-core]=usr/sbin/proftpd [pure-ftpd]=usr/sbin/pure-ftpd)
for pkg in proftpd-core pure-ftpd; do
    [ -x "$root/$pkg/${binary[$pkg]}" ] && continue
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    if ! (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1); then
        apt-get update -qq >/dev/null
        (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
    fi
    rm -rf "$root/$pkg.new"
    mkdir -p "$root"
    dpkg -x "$tmp"/*.deb "$root/$pkg.new"
    dpkg-deb -f "$tmp"/*.deb Version >"$root/$pkg.new/VERSION"
    rm -rf "$root/$pkg" && mv "$root/$pkg.new" "$root/$pkg"
    rm -rf "$tmp"
    trap - EXIT
    echo "ftpd-unpack.sh: $pkg $(cat "$root/$pkg/VERSION") in $root/$pkg"
done
for pkg in proftpd-core pure-ftpd; do
    if ldd "$root/$pkg/${binary[$pkg]}" | grep -q 'not found'; then
        echo "ftpd-unpack.sh: $root/$pkg/${binary[$pkg]} lacks libraries:" \
             "$(ldd "$root/$pkg/${binary[$pkg]}" | grep 'not found' | tr -s ' \t\n' ' ')" >&2
        exit 1
    fi
done
