#!/usr/bin/env bash
# Stops a vsftpd started by vsftpd-start.sh and removes its directory.
# Usage: vsftpd-stop.sh FTP_DIR (the same as ftpd-stop.sh, which stops any
# of the test servers).
exec "$(dirname "$0")/ftpd-stop.sh" "$@"
