// The LZOP library; see ../../../shared/DESIGN.md.
