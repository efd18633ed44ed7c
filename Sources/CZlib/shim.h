#ifndef RESCUEBOX_CZLIB_SHIM_H
#define RESCUEBOX_CZLIB_SHIM_H
/* zlib's adler32/crc32, which equal lzop's checksums (docs/lzop-format.md). */
#include <zlib.h>
#endif
