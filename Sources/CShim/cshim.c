#define _GNU_SOURCE
#include "cshim.h"
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/timex.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

int rb_o_direct(void) { return O_DIRECT; }
int rb_o_tmpfile(void) { return O_TMPFILE; }
int rb_o_cloexec(void) { return O_CLOEXEC; }

int rb_blkdev_size(int fd, uint64_t *bytes) { return ioctl(fd, BLKGETSIZE64, bytes); }
int rb_blkdev_sector_size(int fd, int *bytes) { return ioctl(fd, BLKSSZGET, bytes); }

int rb_fitrim(int fd, uint64_t minlen, uint64_t *trimmed) {
    struct fstrim_range range = { .start = 0, .len = UINT64_MAX, .minlen = minlen };
    int rc = ioctl(fd, FITRIM, &range);
    if (rc == 0 && trimmed) *trimmed = range.len;
    return rc;
}

int rb_get_inode_flags(int fd, int *flags) { return ioctl(fd, FS_IOC_GETFLAGS, flags); }
int rb_set_inode_flags(int fd, int flags) { return ioctl(fd, FS_IOC_SETFLAGS, &flags); }
int rb_fs_nocow_fl(void) { return FS_NOCOW_FL; }

int rb_set_direct(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    fl = on ? (fl | O_DIRECT) : (fl & ~O_DIRECT);
    return fcntl(fd, F_SETFL, fl);
}

int rb_terminal_columns(int fd) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) != 0) return 0;
    return ws.ws_col;
}

int rb_adjtimex_status(int set, int new_status, int *status, int *time_state) {
    struct timex tx = {0};
    if (set) { tx.modes = ADJ_STATUS; tx.status = new_status; }
    int rc = adjtimex(&tx);
    if (rc < 0) return -1;
    if (status) *status = tx.status;
    if (time_state) *time_state = rc;
    return 0;
}
int rb_sta_ins(void) { return STA_INS; }
int rb_sta_del(void) { return STA_DEL; }


static int saved_argc;
static char **saved_argv;

/* Runs before the Swift runtime's own static initializers (priority 101
   comes before default-priority constructors). The runtime's backtracer
   looks up its own path via /proc/self/exe at start-up and aborts when
   that fails, as it does in an empty chroot; SWIFT_ROOT gives it a path
   so the binary runs anywhere. */
__attribute__((constructor(101)))
static void rb_early_init(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
    char buf[16];
    if (readlink("/proc/self/exe", buf, sizeof buf) < 0 && getenv("SWIFT_ROOT") == NULL)
        setenv("SWIFT_ROOT", "/", 0);
}

int rb_argc(void) { return saved_argc; }
char **rb_argv(void) { return saved_argv; }

long rb_fstatfs_type(int fd) { struct statfs s; return fstatfs(fd, &s) == 0 ? (long)s.f_type : -1; }
long rb_statfs_type(const char *path) { struct statfs s; return statfs(path, &s) == 0 ? (long)s.f_type : -1; }

ssize_t rb_flistxattr(int fd, char *list, size_t size) { return flistxattr(fd, list, size); }
ssize_t rb_fgetxattr(int fd, const char *name, void *value, size_t size) { return fgetxattr(fd, name, value, size); }
int rb_fsetxattr(int fd, const char *name, const void *value, size_t size) { return fsetxattr(fd, name, value, size, 0); }
int rb_syncfs(int fd) { return syncfs(fd); }

long rb_splice(int fd_in, int fd_out, unsigned long len, int more) {
    return (long)splice(fd_in, NULL, fd_out, NULL, len, SPLICE_F_MOVE | (more ? SPLICE_F_MORE : 0));
}
int rb_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }
