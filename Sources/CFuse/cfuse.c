#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include "cfuse.h"
#include <fuse3/fuse.h>
#include <fuse3/fuse_lowlevel.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct fuse *rb_fuse;
static const rb_fuse_file *rb_files;
static int rb_count;
static rb_fuse_read_fn rb_read_cb;
static void *rb_context;
static time_t rb_mounted_at;
static int rb_direct_io;
static volatile int rb_unmounted;

static int rb_find(const char *path) {
    if (path[0] != '/') return -1;
    for (int i = 0; i < rb_count; i++)
        if (strcmp(path + 1, rb_files[i].name) == 0) return i;
    return -1;
}

static int rb_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    memset(st, 0, sizeof *st);
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_atime = st->st_mtime = st->st_ctime = rb_mounted_at;
    if (strcmp(path, "/") == 0) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        return 0;
    }
    int i = rb_find(path);
    if (i < 0) return -ENOENT;
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = (off_t)rb_files[i].size;
    st->st_blksize = 256 * 1024;
    st->st_blocks = (blkcnt_t)((rb_files[i].size + 511) / 512);
    return 0;
}

static int rb_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
    (void)offset; (void)fi; (void)flags;
    if (strcmp(path, "/") != 0) return -ENOTDIR;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    for (int i = 0; i < rb_count; i++) fill(buf, rb_files[i].name, NULL, 0, 0);
    return 0;
}

static int rb_open(const char *path, struct fuse_file_info *fi) {
    int i = rb_find(path);
    if (i < 0) return -ENOENT;
    if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
    fi->fh = (uint64_t)i;
    // Direct I/O: every read comes here (our block cache is the only
    // cache; no second copy in the kernel's page cache). Otherwise the
    // page cache keeps what was read across opens.
    if (rb_direct_io) fi->direct_io = 1;
    else fi->keep_cache = 1;
    return 0;
}

static int rb_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    int i = (int)fi->fh;
    if (offset < 0) return -EINVAL;
    if ((uint64_t)offset >= rb_files[i].size) return 0;
    uint64_t left = rb_files[i].size - (uint64_t)offset;
    if (size > left) size = (size_t)left;
    return rb_read_cb(i, buf, size, (uint64_t)offset, rb_context);
}

static int rb_statfs(const char *path, struct statvfs *st) {
    (void)path;
    memset(st, 0, sizeof *st);
    st->f_bsize = 4096;
    st->f_frsize = 4096;
    uint64_t total = 0;
    for (int i = 0; i < rb_count; i++) total += rb_files[i].size;
    st->f_blocks = total / 4096;
    st->f_files = (fsfilcnt_t)rb_count + 1;
    st->f_namemax = 255;
    st->f_flag = ST_RDONLY;
    return 0;
}

static void *rb_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    cfg->kernel_cache = 1;
    cfg->attr_timeout = 3600;
    cfg->entry_timeout = 3600;
    cfg->negative_timeout = 3600;
    conn->max_readahead = 1024 * 1024;
    conn->want |= FUSE_CAP_ASYNC_READ;
    return NULL;
}

static const struct fuse_operations rb_operations = {
    .getattr = rb_getattr,
    .readdir = rb_readdir,
    .open = rb_open,
    .read = rb_read,
    .statfs = rb_statfs,
    .init = rb_init,
};

int rb_fuse_mount(const char *mountpoint, const char *fsname, const rb_fuse_file *files, int count,
                  int direct_io, rb_fuse_read_fn read, void *context, const char **error) {
    rb_files = files;
    rb_direct_io = direct_io;
    rb_count = count;
    rb_read_cb = read;
    rb_context = context;
    rb_mounted_at = time(NULL);
    static char options[4096];
    // fsname shows in /proc/mounts; commas would split the option list.
    char safe[512];
    size_t n = 0;
    for (const char *p = fsname; *p && n + 1 < sizeof safe; p++) safe[n++] = (*p == ',' || *p == '\\') ? '_' : *p;
    safe[n] = 0;
    snprintf(options, sizeof options, "ro,default_permissions,fsname=%s,subtype=rescuebox%s",
             safe, getuid() == 0 ? ",allow_other" : "");
    char *argv[] = { "rescuebox", "-o", options, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    rb_fuse = fuse_new(&args, &rb_operations, sizeof rb_operations, NULL);
    if (!rb_fuse) { *error = "fuse_new failed (bad options, or no /dev/fuse)"; return -1; }
    if (fuse_mount(rb_fuse, mountpoint) != 0) {
        fuse_destroy(rb_fuse);
        rb_fuse = NULL;
        *error = "cannot mount (is /dev/fuse there, is the directory usable, and are we root or is fusermount3 installed?)";
        return -1;
    }
    return 0;
}

int rb_fuse_daemonize(void) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid > 0) _exit(0);
    setsid();
    // The parent blocked these for its sigwait thread, which the child
    // does not have: libfuse's handlers take them here.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    if (chdir("/") != 0) { /* stays where it was */ }
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        if (null > 2) close(null);
    }
    return 0;
}

int rb_fuse_serve(void) {
    if (!rb_fuse) return -EINVAL;
    struct fuse_session *se = fuse_get_session(rb_fuse);
    // libfuse only installs its handlers over the default disposition.
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    if (fuse_set_signal_handlers(se) != 0) return -EIO;
    // Decoded blocks (256 KiB) and runs of compressed blocks come and go
    // all the time: keep freed memory in the heap for the next one instead
    // of unmapping it (glibc's default above 128 KiB), which cost a page
    // fault per 4 KiB on every new block.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    int r = fuse_loop_mt(rb_fuse, 0);
    // Unmounted from a signal's cleanup: that thread still uses the
    // structures and the process exits from there.
    if (rb_unmounted) return 0;
    fuse_remove_signal_handlers(se);
    fuse_unmount(rb_fuse);
    fuse_destroy(rb_fuse);
    rb_fuse = NULL;
    return r < 0 ? r : 0;
}

void rb_fuse_unmount_now(void) {
    if (!rb_fuse) return;
    rb_unmounted = 1;
    fuse_session_exit(fuse_get_session(rb_fuse));
    fuse_unmount(rb_fuse);
}
