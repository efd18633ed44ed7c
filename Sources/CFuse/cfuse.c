#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include "cfuse.h"
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

// Low-level API: a read is answered with fuse_reply_iov straight from the
// decoded blocks (no copy into a libfuse buffer first). Inode 1 is the
// directory, file i is inode 2 + i.
static struct fuse_session *rb_session;
static const rb_fuse_file *rb_files;
static int rb_count;
static rb_fuse_read_fn rb_read_cb;
static void *rb_context;
static time_t rb_mounted_at;
static int rb_direct_io;
static volatile int rb_unmounted;
static const double rb_timeout = 3600;   // nothing ever changes

static int rb_file_of(fuse_ino_t ino) {
    if (ino < 2 || ino >= 2 + (fuse_ino_t)rb_count) return -1;
    return (int)(ino - 2);
}

static void rb_fill_stat(fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_atime = st->st_mtime = st->st_ctime = rb_mounted_at;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        return;
    }
    int i = rb_file_of(ino);
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = (off_t)rb_files[i].size;
    st->st_blksize = 256 * 1024;
    st->st_blocks = (blkcnt_t)((rb_files[i].size + 511) / 512);
}

static void rb_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (parent != FUSE_ROOT_ID) { fuse_reply_err(req, ENOTDIR); return; }
    for (int i = 0; i < rb_count; i++) {
        if (strcmp(name, rb_files[i].name) != 0) continue;
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.ino = 2 + (fuse_ino_t)i;
        e.attr_timeout = rb_timeout;
        e.entry_timeout = rb_timeout;
        rb_fill_stat(e.ino, &e.attr);
        fuse_reply_entry(req, &e);
        return;
    }
    struct fuse_entry_param none;   // ino 0: a cached negative entry
    memset(&none, 0, sizeof none);
    none.entry_timeout = rb_timeout;
    fuse_reply_entry(req, &none);
}

static void rb_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    if (ino != FUSE_ROOT_ID && rb_file_of(ino) < 0) { fuse_reply_err(req, ENOENT); return; }
    struct stat st;
    rb_fill_stat(ino, &st);
    fuse_reply_attr(req, &st, rb_timeout);
}

static void rb_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)fi;
    if (ino != FUSE_ROOT_ID) { fuse_reply_err(req, ENOTDIR); return; }
    char *buf = malloc(size);
    if (!buf) { fuse_reply_err(req, ENOMEM); return; }
    size_t used = 0;
    // Entry k (0 ".", 1 "..", 2+i the files) carries offset k+1: the next one.
    for (off_t k = offset; k < 2 + (off_t)rb_count; k++) {
        struct stat st;
        memset(&st, 0, sizeof st);
        const char *name = k == 0 ? "." : k == 1 ? ".." : rb_files[k - 2].name;
        st.st_ino = k < 2 ? FUSE_ROOT_ID : (fuse_ino_t)(k);
        st.st_mode = k < 2 ? S_IFDIR : S_IFREG;
        size_t n = fuse_add_direntry(req, buf + used, size - used, name, &st, k + 1);
        if (n > size - used) break;
        used += n;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void rb_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    int i = rb_file_of(ino);
    if (i < 0) { fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT); return; }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) { fuse_reply_err(req, EROFS); return; }
    fi->fh = (uint64_t)i;
    // Direct I/O: every read comes here (our block cache is the only
    // cache; no second copy in the kernel's page cache). Otherwise the
    // page cache keeps what was read across opens.
    if (rb_direct_io) fi->direct_io = 1;
    else fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void rb_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)ino;
    int i = (int)fi->fh;
    if (offset < 0) { fuse_reply_err(req, EINVAL); return; }
    if ((uint64_t)offset >= rb_files[i].size) { fuse_reply_buf(req, NULL, 0); return; }
    uint64_t left = rb_files[i].size - (uint64_t)offset;
    if (size > left) size = (size_t)left;
    rb_read_cb(i, (rb_fuse_request)req, size, (uint64_t)offset, rb_context);
}

int rb_fuse_reply_iov(rb_fuse_request request, const struct iovec *iov, int count) {
    return fuse_reply_iov((fuse_req_t)request, iov, count);
}

int rb_fuse_reply_error(rb_fuse_request request, int error) {
    return fuse_reply_err((fuse_req_t)request, error);
}

static void rb_statfs(fuse_req_t req, fuse_ino_t ino) {
    (void)ino;
    struct statvfs st;
    memset(&st, 0, sizeof st);
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    uint64_t total = 0;
    for (int i = 0; i < rb_count; i++) total += rb_files[i].size;
    st.f_blocks = total / 4096;
    st.f_files = (fsfilcnt_t)rb_count + 1;
    st.f_namemax = 255;
    st.f_flag = ST_RDONLY;
    fuse_reply_statfs(req, &st);
}

static void rb_init(void *userdata, struct fuse_conn_info *conn) {
    (void)userdata;
    conn->max_readahead = 1024 * 1024;
    conn->want |= FUSE_CAP_ASYNC_READ;
}

static const struct fuse_lowlevel_ops rb_operations = {
    .init = rb_init,
    .lookup = rb_lookup,
    .getattr = rb_getattr,
    .readdir = rb_readdir,
    .open = rb_open,
    .read = rb_read,
    .statfs = rb_statfs,
};

int rb_fuse_mount(const char *mountpoint, const char *fsname, const rb_fuse_file *files, int count,
                  int direct_io, rb_fuse_read_fn read, void *context, const char **error) {
    rb_files = files;
    rb_count = count;
    rb_direct_io = direct_io;
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
    rb_session = fuse_session_new(&args, &rb_operations, sizeof rb_operations, NULL);
    if (!rb_session) { *error = "fuse_session_new failed (bad options, or no /dev/fuse)"; return -1; }
    if (fuse_session_mount(rb_session, mountpoint) != 0) {
        fuse_session_destroy(rb_session);
        rb_session = NULL;
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
    if (!rb_session) return -EINVAL;
    struct fuse_session *se = rb_session;
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
    int r = fuse_session_loop_mt(se, 0);
    // Unmounted from a signal's cleanup: that thread still uses the
    // structures and the process exits from there.
    if (rb_unmounted) return 0;
    fuse_remove_signal_handlers(se);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    rb_session = NULL;
    return r < 0 ? r : 0;
}

void rb_fuse_unmount_now(void) {
    if (!rb_session) return;
    rb_unmounted = 1;
    fuse_session_exit(rb_session);
    fuse_session_unmount(rb_session);
}
