#include "rb_ext2fs.h"
#include <ext2fs/ext2fs.h>
#include <et/com_err.h>
#include <stdio.h>

long rb_ext2_open(const char *path, uint64_t offset, void **handle, rb_ext2_info *info) {
    char options[64];
    snprintf(options, sizeof options, "offset=%llu", (unsigned long long)offset);
    ext2_filsys fs = NULL;
    errcode_t err = ext2fs_open2(path, options, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
    if (err) return (long)err;
    struct ext2_super_block *sb = fs->super;
    info->block_size = (uint32_t)fs->blocksize;
    info->blocks_count = ext2fs_blocks_count(sb);
    info->first_data_block = sb->s_first_data_block;
    info->state = sb->s_state;
    info->feature_compat = sb->s_feature_compat;
    info->feature_incompat = sb->s_feature_incompat;
    info->feature_ro_compat = sb->s_feature_ro_compat;
    info->error_count = sb->s_error_count;
    info->free_blocks = ext2fs_free_blocks_count(sb);
    err = ext2fs_read_block_bitmap(fs);
    if (err) { ext2fs_close_free(&fs); return (long)err; }
    *handle = fs;
    return 0;
}

long rb_ext2_bitmap_range(void *handle, uint64_t start, uint64_t count, void *out) {
    ext2_filsys fs = handle;
    return (long)ext2fs_get_block_bitmap_range2(fs->block_map, start, count, out);
}

void rb_ext2_close(void *handle) {
    ext2_filsys fs = handle;
    ext2fs_close_free(&fs);
}

const char *rb_ext2_error(long code) { return error_message((errcode_t)code); }
