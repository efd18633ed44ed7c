// The FTP library; see ../../../shared/DESIGN.md.
