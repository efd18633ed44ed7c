#!/usr/bin/env bash
# Builds dist/rescuebox: one fully static, stripped executable (glibc, the
# Swift runtime, liblzo2 and zlib linked in), then checks that it runs with
# no shared libraries inside an empty chroot.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/opt/swift/usr/bin:$PATH"

need=()
for pkg in liblzo2-dev zlib1g-dev libext2fs-dev ntfs-3g-dev libssl-dev libfuse3-dev file; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    if [ "$(id -u)" != 0 ]; then echo "build-static.sh: missing packages: ${need[*]} (run as root to install)" >&2; exit 1; fi
    echo "build-static.sh: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

swift build -c release --product rescuebox --static-swift-stdlib -Xswiftc -static-executable
bin="$(swift build -c release --show-bin-path)/rescuebox"
mkdir -p dist
cp "$bin" dist/rescuebox
strip dist/rescuebox

if ! file dist/rescuebox | grep -q "statically linked"; then
    echo "build-static.sh: dist/rescuebox is not statically linked:" >&2
    file dist/rescuebox >&2
    exit 1
fi

# The binary alone in an empty directory must run (needs root for chroot).
if [ "$(id -u)" = 0 ]; then
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    cp dist/rescuebox "$root/rescuebox"
    if ! chroot "$root" /rescuebox --list >/dev/null; then
        echo "build-static.sh: dist/rescuebox does not run inside an empty chroot" >&2
        exit 1
    fi
    echo "build-static.sh: runs in an empty chroot: $(chroot "$root" /rescuebox --list | tr '\n' ' ')"
else
    echo "build-static.sh: not root, skipped the empty-chroot check" >&2
fi
size=$(stat -c %s dist/rescuebox)
echo "build-static.sh: dist/rescuebox is $size bytes ($((size / 1048576)) MiB), statically linked, stripped"
