// The ZeroFill library; see ../../../shared/DESIGN.md.
