#!/usr/bin/python3
"""A failing disk for tests: a FUSE filesystem serving one file, disk.img,
whose bytes come from IMAGE except that reads touching the BAD ranges fail
with EIO, as a dying disk's sectors do. Mounted with direct_io so O_DIRECT
reads reach it unchanged.

    faulty_disk.py IMAGE MOUNTPOINT START-END[,START-END...] [--stall START-END:SECONDS]

Ranges are byte offsets, END exclusive. Runs in the foreground until
unmounted (fusermount -u MOUNTPOINT / umount). Every read is logged to
stderr as 'read OFFSET LENGTH ok|EIO', and a stall as it begins as
'stall OFFSET LENGTH SECONDS': tests wait for these lines.
"""
import errno
import os
import stat
import sys
import time

import fusepy as fuse


class FaultyDisk(fuse.Operations):
    def __init__(self, image, bad, stalls):
        self.fd = os.open(image, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.bad = bad
        self.stalls = stalls

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/disk.img":
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": self.size}
        raise fuse.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "disk.img"]

    def open(self, path, flags):
        if path != "/disk.img":
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def read(self, path, size, offset, fh):
        end = offset + size
        for (s, e, seconds) in self.stalls:
            if offset < e and s < end:
                print(f"stall {offset} {size} {seconds}", file=sys.stderr, flush=True)
                time.sleep(seconds)
        for (s, e) in self.bad:
            if offset < e and s < end:
                print(f"read {offset} {size} EIO", file=sys.stderr, flush=True)
                raise fuse.FuseOSError(errno.EIO)
        print(f"read {offset} {size} ok", file=sys.stderr, flush=True)
        return os.pread(self.fd, size, offset)


def ranges(text):
    out = []
    for part in filter(None, text.split(",")):
        s, e = part.split("-")
        out.append((int(s), int(e)))
    return out


def main():
    args = sys.argv[1:]
    stalls = []
    if "--stall" in args:
        i = args.index("--stall")
        spec = args[i + 1]
        del args[i:i + 2]
        r, seconds = spec.split(":")
        s, e = r.split("-")
        stalls.append((int(s), int(e), float(seconds)))
    image, mountpoint, bad = args[0], args[1], ranges(args[2] if len(args) > 2 else "")
    fuse.FUSE(FaultyDisk(image, bad, stalls), mountpoint, foreground=True, direct_io=True,
              ro=True, nothreads=True, allow_other=False)


if __name__ == "__main__":
    main()
