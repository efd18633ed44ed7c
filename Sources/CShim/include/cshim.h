#ifndef RESCUEBOX_CSHIM_H
#define RESCUEBOX_CSHIM_H
/* Linux interfaces Swift cannot import directly: variadic ioctl/fcntl calls
   and flag macros built from other macros. Each returns -1 and sets errno
   on failure, like the call it wraps. */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int rb_o_direct(void);
int rb_o_tmpfile(void);
int rb_o_cloexec(void);

/* BLKGETSIZE64 */
int rb_blkdev_size(int fd, uint64_t *bytes);
/* BLKSSZGET: logical sector size */
int rb_blkdev_sector_size(int fd, int *bytes);
/* FITRIM over the whole filesystem; *trimmed receives the bytes trimmed. */
int rb_fitrim(int fd, uint64_t minlen, uint64_t *trimmed);
/* FS_IOC_GETFLAGS / FS_IOC_SETFLAGS */
int rb_get_inode_flags(int fd, int *flags);
int rb_set_inode_flags(int fd, int flags);
int rb_fs_nocow_fl(void);
/* Turn O_DIRECT off (or on) on an open descriptor. */
int rb_set_direct(int fd, int on);
/* TIOCGWINSZ columns, 0 when unknown. */
int rb_terminal_columns(int fd);
/* adjtimex: read (modes == 0) or set the kernel time status. */
int rb_adjtimex_status(int set, int new_status, int *status, int *time_state);
int rb_sta_ins(void);
int rb_sta_del(void);

/* The process's real argc/argv, captured by a constructor. A static binary
   in a chroot without /proc cannot get them from the Swift runtime
   (CommandLine.arguments reads /proc/self/cmdline there); the real argv is
   also what must be overwritten to hide a password from ps. */
int rb_argc(void);
char **rb_argv(void);

/* statfs(2) f_type (filesystem magic, e.g. 0x01021994 tmpfs); -1 on error. */
long rb_fstatfs_type(int fd);
long rb_statfs_type(const char *path);

/* Extended attributes (security.selinux, POSIX ACLs) for ntpleap's safe
   write: <sys/xattr.h> is not in Swift's Glibc module. */
ssize_t rb_flistxattr(int fd, char *list, size_t size);
ssize_t rb_fgetxattr(int fd, const char *name, void *value, size_t size);
int rb_fsetxattr(int fd, const char *name, const void *value, size_t size);
/* syncfs(2) (glibc declares it only under _GNU_SOURCE). */
int rb_syncfs(int fd);

/* splice(2) between a pipe and another descriptor, no offsets, SPLICE_F_MOVE
   (plus SPLICE_F_MORE when more data follows). F_SETPIPE_SZ. */
long rb_splice(int fd_in, int fd_out, unsigned long len, int more);
int rb_set_pipe_size(int fd, int size);

#endif
