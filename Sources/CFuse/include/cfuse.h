// A small read-only libfuse3 file system of fixed files, for `rescuebox
// mount`: the C side of fuse_operations (libfuse's API is macros and
// versioned symbols), calling back into Swift for the bytes.
#ifndef RB_CFUSE_H
#define RB_CFUSE_H
#include <stdint.h>
#include <stddef.h>

typedef struct {
    const char *name;   // "disk.img" (no slash)
    uint64_t size;
} rb_fuse_file;

// Fills buf with up to size bytes of file `file` from `offset`; returns the
// byte count (short only at the end) or -errno.
typedef int (*rb_fuse_read_fn)(int file, char *buf, size_t size, uint64_t offset, void *context);

// Creates the file system and mounts it on `mountpoint` (read-only). As
// root libfuse mounts with mount(2) itself (no fusermount). `direct_io`:
// the files are opened with FOPEN_DIRECT_IO (no kernel page cache; shared
// mmap is refused), else cached by the kernel. Returns 0, or -1 with the
// reason in `error` (a static string).
int rb_fuse_mount(const char *mountpoint, const char *fsname, const rb_fuse_file *files, int count,
                  int direct_io, rb_fuse_read_fn read, void *context, const char **error);

// Forks: the parent exits 0 at once (the mount is already in place); the
// child starts a new session, moves to /, points stdin and stdout at
// /dev/null (stderr stays: corrupt-block messages go there) and returns 0.
// Returns -1 when fork fails.
int rb_fuse_daemonize(void);

// Serves requests (several threads) until `umount`, or SIGINT, SIGTERM or
// SIGHUP where they are not blocked (the daemonized child), then unmounts and frees everything. Returns 0, or the loop's
// error (-errno).
int rb_fuse_serve(void);

// From another thread (a signal's cleanup): ends the loop and unmounts.
void rb_fuse_unmount_now(void);

#endif
