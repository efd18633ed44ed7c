#ifndef RESCUEBOX_EXT2FS_SHIM_H
#define RESCUEBOX_EXT2FS_SHIM_H
#include <stdint.h>

/* What the used-blocks map needs from an ext2/3/4 superblock. */
typedef struct {
    uint32_t block_size;
    uint64_t blocks_count;
    uint32_t first_data_block;
    uint16_t state;            /* EXT2_VALID_FS 1, EXT2_ERROR_FS 2 */
    uint32_t feature_compat;
    uint32_t feature_incompat;
    uint32_t feature_ro_compat;
    uint32_t error_count;
    uint64_t free_blocks;
} rb_ext2_info;

enum {
    RB_EXT2_VALID_FS = 1, RB_EXT2_ERROR_FS = 2,
    RB_EXT3_FEATURE_INCOMPAT_RECOVER = 0x0004, RB_EXT3_FEATURE_INCOMPAT_JOURNAL_DEV = 0x0008,
    RB_EXT4_FEATURE_INCOMPAT_MMP = 0x0100
};

/* Opens the filesystem at byte `offset` of `path` read-only (libext2fs's
   unix I/O manager, "offset=" option) and reads its block bitmap.
   Returns 0 or a libext2fs/com_err error code. */
long rb_ext2_open(const char *path, uint64_t offset, void **handle, rb_ext2_info *info);
/* Bits of blocks [start, start + count) into out (bit i of byte i/8 set:
   block start+i in use). start >= first_data_block. */
long rb_ext2_bitmap_range(void *handle, uint64_t start, uint64_t count, void *out);
void rb_ext2_close(void *handle);
const char *rb_ext2_error(long code);
#endif
