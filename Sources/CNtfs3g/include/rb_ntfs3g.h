#ifndef RESCUEBOX_NTFS3G_SHIM_H
#define RESCUEBOX_NTFS3G_SHIM_H
#include <stdint.h>

/* What the used-blocks map needs from an NTFS volume (libntfs-3g). */
typedef struct {
    uint32_t cluster_size;
    uint64_t nr_clusters;
    int dirty;          /* $Volume flags has VOLUME_IS_DIRTY */
    int hibernated;     /* hiberfil.sys holds a hibernation/fast-startup image */
    int logfile_dirty;  /* $LogFile not clean (or cannot be checked) */
} rb_ntfs_info;

/* Opens the NTFS at bytes [offset, offset + length) of `path` read-only
   through libntfs-3g (a device-operations table that adds the offset).
   Returns 0, or an errno value. */
int rb_ntfs_open(const char *path, uint64_t offset, uint64_t length, void **handle, rb_ntfs_info *info);
/* Bytes [byte_offset, byte_offset + count) of the cluster bitmap ($Bitmap):
   bit i (LSB first) set = cluster i in use. Returns bytes read or -1. */
int64_t rb_ntfs_bitmap(void *handle, uint64_t byte_offset, uint64_t count, void *out);
void rb_ntfs_close(void *handle);
#endif
