#!/usr/bin/env bash
# See rescuebox work, end to end, on throwaway loop devices (needs root):
# a disk with files and deleted files -> zerofill -> backup to a private
# vsftpd on 127.0.0.1 -> restore into a second disk -> identical.
# Cleans up everything it made, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (loop devices, mount, vsftpd)" >&2; exit 1; }
for pkg in vsftpd lzop e2fsprogs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
./build-static.sh >/dev/null   # incremental: quick when nothing changed
rb="$PWD/dist/rescuebox"
size_mb="${DEMO_SIZE_MB:-256}"

work="$(mktemp -d /var/tmp/rescuebox-demo.XXXXXX)"
src="" dst="" ftp_dir=""
cleanup() {
    umount "$work/mnt" 2>/dev/null || true
    [ -n "$src" ] && losetup -d "$src" 2>/dev/null || true
    [ -n "$dst" ] && losetup -d "$dst" 2>/dev/null || true
    [ -n "$ftp_dir" ] && scripts/vsftpd-stop.sh "$ftp_dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "a ${size_mb} MiB ext4 disk with files, some deleted"
truncate -s "${size_mb}M" "$work/source.img"
src="$(losetup --find --show "$work/source.img")"
mkfs.ext4 -q "$src"
mkdir "$work/mnt"
mount "$src" "$work/mnt"
mkdir "$work/mnt/bin" "$work/mnt/doc"
cp /usr/bin/{bash,ls,cp,dd,tar,gzip,grep,sed,find,lzop} "$work/mnt/bin/" 2>/dev/null || true  # binaries
cp -r /usr/share/doc/[a-d]* "$work/mnt/doc/" 2>/dev/null || true          # text
head -c $((size_mb / 3))M /dev/urandom > "$work/mnt/deleted-secrets"      # deleted data
sync && rm "$work/mnt/deleted-secrets"
df -h "$work/mnt" | tail -1

step "compressed size before zerofill (lzop -1)"
sync
before=$(lzop -1 -c < "$src" | wc -c)
echo "$before bytes"

step "rescuebox zerofill"
"$rb" zerofill "$work/mnt"
umount "$work/mnt"
after=$(lzop -1 -c < "$src" | wc -c)
echo "compressed size after zerofill: $after bytes (was $before)"

step "a private vsftpd on 127.0.0.1"
eval "$(scripts/vsftpd-start.sh)"
ftp_dir="$FTP_DIR"
echo "ftp://$FTP_USER@$FTP_HOST:$FTP_PORT/ (home $FTP_HOME)"

step "rescuebox backup --manifest $src ftp://…/images/"
FTP_PASSWORD="$FTP_PASS" "$rb" backup --manifest --mkdirs "$src" "ftp://$FTP_USER@$FTP_HOST:$FTP_PORT/images/"
ls -l "$FTP_HOME/images"
image="$(cd "$FTP_HOME/images" && ls *.lzo)"
lzop -t "$FTP_HOME/images/$image" && echo "lzop -t: OK"
cat "$FTP_HOME/images/$image.json"

step "rescuebox restore into a second disk"
truncate -s "${size_mb}M" "$work/target.img"
dst="$(losetup --find --show "$work/target.img")"
FTP_PASSWORD="$FTP_PASS" "$rb" restore "ftp://$FTP_USER@$FTP_HOST:$FTP_PORT/images/$image" "$dst"

step "compare"
if cmp "$src" "$dst"; then
    echo "the restored disk is identical to the source ($((size_mb)) MiB, image $(stat -c %s "$FTP_HOME/images/$image") bytes)"
else
    echo "demo.sh: the restored disk differs!" >&2
    exit 1
fi
