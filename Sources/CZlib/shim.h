#ifndef RESCUEBOX_CZLIB_SHIM_H
#define RESCUEBOX_CZLIB_SHIM_H
#include <zlib.h>

/* deflateInit2 is a macro; expose it as a function. */
static inline int rb_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}
static inline int rb_inflateInit2(z_streamp strm, int windowBits) { return inflateInit2(strm, windowBits); }
#endif
