// The NTPConf library; see ../../../shared/DESIGN.md.
