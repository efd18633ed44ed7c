#ifndef RESCUEBOX_CLZO_SHIM_H
#define RESCUEBOX_CLZO_SHIM_H
#include <lzo/lzo1x.h>

/* lzo_init() is a macro that checks the ABI sizes; Swift cannot call macros. */
static inline int rb_lzo_init(void) { return lzo_init(); }

/* Work memory sizes are macros too. */
static inline unsigned long rb_lzo1x_1_mem(void) { return LZO1X_1_MEM_COMPRESS; }
static inline unsigned long rb_lzo1x_1_15_mem(void) { return LZO1X_1_15_MEM_COMPRESS; }
static inline unsigned long rb_lzo1x_999_mem(void) { return LZO1X_999_MEM_COMPRESS; }
static inline unsigned rb_lzo_version(void) { return lzo_version(); }
#endif
