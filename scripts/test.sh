#!/usr/bin/env bash
# The project's test command (README, CI): installs what the tests need,
# builds the static binary, runs every test against it and real tools.
# Tests needing root, loop devices or FUSE skip with a reason without them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

# Debian packages the build and the tests use (real tools as oracles and peers).
# proftpd and pure-ftpd conflict with vsftpd as packages: only their shared
# libraries are installed here; scripts/ftpd-unpack.sh unpacks them below.
packages=(liblzo2-dev zlib1g-dev libssl-dev strace libfuse3-dev lzop vsftpd busybox curl tnftp file
          e2fsprogs dosfstools ntfs-3g btrfs-progs fuse3 python3-fusepy util-linux procps attr
          openssl libhiredis0.14 libmemcached11 libmemcachedutil2 libsodium23 libpcre2-posix3
          libcap2-bin iproute2 patch libbsd0 libssl3 libedit2 libgnutls30 libnettle8 libseccomp2
          libext2fs-dev ntfs-3g-dev fdisk gdisk mtools partclone exfatprogs exfat-fuse xfsprogs)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "test.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # No package starts a service (vsftpd would listen on port 21 of
        # every address): a temporary policy-rc.d refuses, as in containers.
        policy=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            policy=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
        fi
        installed=0
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null && installed=1
        [ -z "$policy" ] || rm -f "$policy"
        ((installed)) || { echo "test.sh: apt-get install failed" >&2; exit 1; }
    else
        echo "test.sh: missing packages (tests needing them will skip): ${missing[*]}" >&2
    fi
fi
# proftpd and pure-ftpd for the interop tests (FtpInteropTests), without
# installing them as services: apt-get download + dpkg -x.
if [ "$(id -u)" = 0 ]; then
    scripts/ftpd-unpack.sh
fi

# ntpleap's judges: ntpsec's ntpd and chrony's chronyd. They conflict with
# each other (and with systemd-timesyncd) as installed packages, so they are
# unpacked, not installed: no maintainer script runs, no service starts, the
# clock is never touched. The tests run ntpd in its own namespaces without
# CAP_SYS_TIME (NtpLeapTests).
time_daemons="$PWD/.build/time-daemons"
if [ ! -x "$time_daemons/usr/sbin/ntpd" ] || [ ! -x "$time_daemons/usr/sbin/chronyd" ]; then
    mkdir -p "$time_daemons/debs"
    fetch() { (cd "$time_daemons/debs" && apt-get download ntpsec chrony >/dev/null 2>&1); }
    if fetch || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && fetch; }; then
        for deb in "$time_daemons"/debs/*.deb; do dpkg -x "$deb" "$time_daemons"; done
    else
        echo "test.sh: cannot download ntpsec/chrony (the real-daemon ntpleap tests will skip)" >&2
    fi
fi
export RESCUEBOX_TIME_DAEMONS="$time_daemons"

./build-static.sh
export RESCUEBOX_BIN="$PWD/dist/rescuebox"

# A short fuzzing round of every parser (longer: FUZZ_SECONDS=600 scripts/fuzz.sh).
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz.sh

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
swift test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# XCTest's total, restated as the plain closing line (swift test ends with
# Swift Testing's own "0 tests" line, since every test here is XCTest).
summary=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -1)
executed=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
skipped=$(grep -Eo "with ([0-9]+) tests? skipped" <<<"$summary" | grep -Eo "[0-9]+" || echo 0)
if [ -n "$summary" ]; then
    echo "tests: $((executed - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit "$status"
