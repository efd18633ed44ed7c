#include "rb_ntfs3g.h"
/* libntfs-3g's headers expect its config.h; these are what it would say. */
#define HAVE_STDINT_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_STDARG_H 1
#define HAVE_STDDEF_H 1
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <ntfs-3g/types.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/logfile.h>
#include <ntfs-3g/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A window [offset, offset + length) of a file, as an ntfs_device. */
typedef struct { int fd; uint64_t offset; uint64_t length; int64_t pos; } window;

static int w_open(struct ntfs_device *dev, int flags) {
    window *w = dev->d_private;
    (void)flags;
    if (w->fd < 0) { errno = EBADF; return -1; }
    NDevSetOpen(dev);
    NDevSetReadOnly(dev);
    return 0;
}
static int w_close(struct ntfs_device *dev) { NDevClearOpen(dev); return 0; }
static s64 w_seek(struct ntfs_device *dev, s64 offset, int whence) {
    window *w = dev->d_private;
    s64 base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? w->pos : (s64)w->length;
    if (base + offset < 0) { errno = EINVAL; return -1; }
    w->pos = base + offset;
    return w->pos;
}
static s64 w_pread(struct ntfs_device *dev, void *buf, s64 count, s64 offset) {
    window *w = dev->d_private;
    if (offset < 0) { errno = EINVAL; return -1; }
    if ((uint64_t)offset >= w->length) return 0;
    if ((uint64_t)(offset + count) > w->length) count = (s64)(w->length - (uint64_t)offset);
    s64 done = 0;
    while (done < count) {
        ssize_t n = pread(w->fd, (char *)buf + done, (size_t)(count - done), (off_t)(w->offset + (uint64_t)offset + (uint64_t)done));
        if (n < 0) { if (errno == EINTR) continue; return done ? done : -1; }
        if (n == 0) break;
        done += n;
    }
    return done;
}
static s64 w_read(struct ntfs_device *dev, void *buf, s64 count) {
    window *w = dev->d_private;
    s64 n = w_pread(dev, buf, count, w->pos);
    if (n > 0) w->pos += n;
    return n;
}
static s64 w_write(struct ntfs_device *dev, const void *buf, s64 count) { (void)dev; (void)buf; (void)count; errno = EROFS; return -1; }
static s64 w_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 offset) { (void)offset; return w_write(dev, buf, count); }
static int w_sync(struct ntfs_device *dev) { (void)dev; return 0; }
static int w_stat(struct ntfs_device *dev, struct stat *st) {
    window *w = dev->d_private;
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | 0400;
    st->st_size = (off_t)w->length;
    return 0;
}
static int w_ioctl(struct ntfs_device *dev, unsigned long request, void *argp) {
    (void)dev; (void)request; (void)argp; errno = ENOTTY; return -1;
}
static struct ntfs_device_operations window_ops = {
    .open = w_open, .close = w_close, .seek = w_seek, .read = w_read, .write = w_write,
    .pread = w_pread, .pwrite = w_pwrite, .sync = w_sync, .stat = w_stat, .ioctl = w_ioctl,
};

typedef struct { ntfs_volume *vol; window *w; } handle_t;

static int logfile_dirty(ntfs_volume *vol) {
    ntfs_inode *ni = ntfs_inode_open(vol, FILE_LogFile);
    if (!ni) return 1;
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
    if (!na) { ntfs_inode_close(ni); return 1; }
    RESTART_PAGE_HEADER *rp = NULL;
    int dirty = 1;
    if (ntfs_check_logfile(na, &rp) && ntfs_is_logfile_clean(na, rp)) dirty = 0;
    free(rp);
    ntfs_attr_close(na);
    ntfs_inode_close(ni);
    return dirty;
}

int rb_ntfs_open(const char *path, uint64_t offset, uint64_t length, void **out, rb_ntfs_info *info) {
    ntfs_log_set_levels(0);
    ntfs_log_clear_levels(~0u);
    window *w = calloc(1, sizeof *w);
    if (!w) return ENOMEM;
    w->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w->fd < 0) { int e = errno; free(w); return e; }
    w->offset = offset;
    w->length = length;
    struct ntfs_device *dev = ntfs_device_alloc(path, 0, &window_ops, w);
    if (!dev) { int e = errno; close(w->fd); free(w); return e ? e : ENOMEM; }
    ntfs_volume *vol = ntfs_device_mount(dev, NTFS_MNT_RDONLY);
    if (!vol) {
        int e = errno;
        ntfs_device_free(dev);
        close(w->fd); free(w);
        return e ? e : EINVAL;
    }
    info->cluster_size = vol->cluster_size;
    info->nr_clusters = (uint64_t)vol->nr_clusters;
    info->dirty = (vol->flags & VOLUME_IS_DIRTY) != 0;
    info->hibernated = ntfs_volume_check_hiberfile(vol, 0) != 0;
    info->logfile_dirty = logfile_dirty(vol);
    handle_t *h = calloc(1, sizeof *h);
    if (!h) { ntfs_umount(vol, FALSE); close(w->fd); free(w); return ENOMEM; }
    h->vol = vol;
    h->w = w;
    *out = h;
    return 0;
}

int64_t rb_ntfs_bitmap(void *handle, uint64_t byte_offset, uint64_t count, void *out) {
    handle_t *h = handle;
    return ntfs_attr_pread(h->vol->lcnbmp_na, (s64)byte_offset, (s64)count, out);
}

void rb_ntfs_close(void *handle) {
    handle_t *h = handle;
    ntfs_umount(h->vol, FALSE);   /* frees the device too */
    close(h->w->fd);
    free(h->w);
    free(h);
}
