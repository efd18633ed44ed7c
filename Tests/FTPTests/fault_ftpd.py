#!/usr/bin/env python3
"""A scripted FTP server for what vsftpd will not do on request.

Usage: fault_ftpd.py SCENARIO LOGFILE
Listens on 127.0.0.1 only (a free port, printed on stdout as "PORT n"),
records every command line it receives in LOGFILE (one repr() per line,
"CONNECT" for each control connection, "DATA-CONNECT ip" for each data
connection), and serves until killed. Files live in memory; "data.bin"
(1 MiB + 7 bytes, byte i = i % 251) is there from the start.

Scenarios:
  normal       a plain server
  no-epsv      EPSV refused (500); PASV answers with 127.0.0.2 as the
               address (clients must connect to the control peer instead)
  short-store  STOR keeps all but the last 10 bytes, still says 226
  short-retr   RETR sends all but the last 10 bytes, still says 226
  fail421 / fail451 / fail552
               after 256 KiB of a STOR: that reply on the control
               connection, data connection closed (421 also closes control)
  stall        STOR: accepts the data connection, then never reads again;
               RETR: sends 100 000 bytes, then nothing (connection open)
  multiline    every reply is multi-line with inner lines starting with digits
  no-pasv      EPSV and PASV refused (500): no data connection is possible
  readonly     "keep.bin" (20 MiB) exists; STOR/APPE to it are refused (553)
  no-size      SIZE not implemented (502); MLST and LIST neither
  size-denied  SIZE and MLST answer 550 for every name (proftpd's
               <Limit SIZE> DenyAll); LIST gives an ls -l line
  hostile-size SIZE answers "213 -5" for every name
  full         the disk holds 512 KiB: a STOR stores up to that, then
               answers a multi-line 451 (as pure-ftpd does on ENOSPC)
  rest-stor-refused
               REST is accepted (350) but a STOR after it is refused with
               451 (proftpd's AllowStoreRestart off); APPE works
"""
import socket
import socketserver
import sys
import threading

SCENARIO = sys.argv[1]
LOG = open(sys.argv[2], "a", buffering=1)
LOCK = threading.Lock()
FILES = {"data.bin": bytes(i % 251 for i in range(1024 * 1024 + 7))}
if SCENARIO == "readonly":
    FILES["keep.bin"] = b"k" * (20 * 1024 * 1024)
FULL_LIMIT = 512 * 1024


def log(text):
    with LOCK:
        LOG.write(text + "\n")


class Session(socketserver.StreamRequestHandler):
    def reply(self, code, text):
        if SCENARIO == "multiline":
            body = "%d-%s\r\n%d inner line with digits\r\n%d- not the end either\r\n 123 indented\r\n%d %s\r\n" % (
                code, text, code + 1 if code < 599 else code - 1, code, code, text)
        else:
            body = "%d %s\r\n" % (code, text)
        self.wfile.write(body.encode())
        self.wfile.flush()

    def handle(self):
        log("CONNECT")
        self.listener = None
        self.rest = 0
        self.rnfr = None
        self.reply(220, "fault server (%s)" % SCENARIO)
        while True:
            line = self.rfile.readline(8192)
            if not line:
                return
            log(repr(line))
            cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, arg = cmd.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                self.reply(502, "%s not implemented" % verb)
                continue
            if handler(arg) == "close":
                return

    def do_USER(self, arg):
        self.reply(331, "password please")

    def do_PASS(self, arg):
        self.reply(230, "logged in")

    def do_TYPE(self, arg):
        self.reply(200, "type set")

    def do_QUIT(self, arg):
        self.reply(221, "bye")
        return "close"

    def listen(self):
        if self.listener:
            self.listener.close()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(10)
        return self.listener.getsockname()[1]

    def do_EPSV(self, arg):
        if SCENARIO in ("no-epsv", "no-pasv"):
            self.reply(500, "EPSV not understood")
            return
        self.reply(229, "Entering Extended Passive Mode (|||%d|)" % self.listen())

    def do_PASV(self, arg):
        if SCENARIO == "no-pasv":
            self.reply(500, "passive mode not allowed here")
            return
        port = self.listen()
        host = "127,0,0,2" if SCENARIO == "no-epsv" else "127,0,0,1"
        self.reply(227, "Entering Passive Mode (%s,%d,%d)." % (host, port >> 8, port & 255))

    def accept_data(self):
        conn, addr = self.listener.accept()
        log("DATA-CONNECT %s" % addr[0])
        self.listener.close()
        self.listener = None
        return conn

    def do_REST(self, arg):
        self.rest = int(arg)
        self.reply(350, "restarting at %d" % self.rest)

    def do_SIZE(self, arg):
        if SCENARIO == "no-size":
            self.reply(502, "SIZE not implemented")
        elif SCENARIO == "size-denied":
            self.reply(550, "%s: Operation not permitted" % arg)
        elif SCENARIO == "hostile-size":
            self.reply(213, "-5")
        elif arg in FILES:
            self.reply(213, "%d" % len(FILES[arg]))
        else:
            self.reply(550, "no such file")

    def do_MLST(self, arg):
        if SCENARIO in ("no-size", "hostile-size"):
            self.reply(502, "MLST not implemented")
        else:
            self.reply(550, "MLST denied")

    def do_LIST(self, arg):
        if SCENARIO != "size-denied":
            self.reply(502, "LIST not implemented")
            return
        if not self.listener:
            self.reply(425, "use PASV first")
            return
        conn = self.accept_data()
        self.reply(150, "here it comes")
        if arg in FILES:
            conn.sendall(("-rw-r--r--    1 ftp      ftp      %12d Nov 30 12:00 %s\r\n" % (len(FILES[arg]), arg)).encode())
        conn.close()
        self.reply(226, "Directory send OK")

    def do_ABOR(self, arg):
        self.reply(225, "no transfer to abort")

    def do_NOOP(self, arg):
        self.reply(200, "NOOP ok")

    def do_STOR(self, arg, append=False):
        if SCENARIO == "readonly" and arg == "keep.bin":
            self.reply(553, "Could not create file.")
            return
        if SCENARIO == "rest-stor-refused" and self.rest and not append:
            self.rest = 0
            if self.listener:
                self.listener.close()
                self.listener = None
            self.reply(451, "Append/Restart not permitted, try again")
            return
        if not self.listener:
            self.reply(425, "use PASV first")
            return
        conn = self.accept_data()
        self.reply(150, "ok, send")
        start = b""
        if append:
            start = FILES.get(arg, b"")
        elif self.rest:
            start = FILES.get(arg, b"")[: self.rest]
        self.rest = 0
        received = bytearray()
        if SCENARIO == "stall":
            threading.Event().wait(3600)
            return "close"
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
            if SCENARIO == "full" and len(start) + len(received) > FULL_LIMIT:
                FILES[arg] = (start + bytes(received))[:FULL_LIMIT]
                conn.close()
                self.wfile.write(b"451-Error during write to file\r\n451 Transfer aborted: No space left on device\r\n")
                self.wfile.flush()
                return
            FILES[arg] = start + bytes(received)
            if SCENARIO.startswith("fail") and len(received) >= 256 * 1024:
                code = int(SCENARIO[4:])
                text = {421: "Service closing control connection", 451: "Local error in processing",
                        552: "Exceeded storage allocation"}[code]
                conn.close()
                self.reply(code, text)
                return "close" if code == 421 else None
        conn.close()
        data = start + bytes(received)
        if SCENARIO == "short-store":
            data = data[:-10] if len(data) > 10 else b""
        FILES[arg] = data
        self.reply(226, "Transfer complete")

    def do_APPE(self, arg):
        return self.do_STOR(arg, append=True)

    def do_RETR(self, arg):
        if arg not in FILES:
            self.reply(550, "no such file")
            return
        if not self.listener:
            self.reply(425, "use PASV first")
            return
        conn = self.accept_data()
        self.reply(150, "ok, receive")
        data = FILES[arg][self.rest:]
        self.rest = 0
        if SCENARIO == "short-retr":
            data = data[:-10]
        if SCENARIO == "stall":
            conn.sendall(data[:100000])
            threading.Event().wait(3600)
            return "close"
        conn.sendall(data)
        conn.close()
        self.reply(226, "Transfer complete")

    def do_RNFR(self, arg):
        if arg not in FILES:
            self.reply(550, "no such file")
            return
        self.rnfr = arg
        self.reply(350, "ready for RNTO")

    def do_RNTO(self, arg):
        FILES[arg] = FILES.pop(self.rnfr)
        self.reply(250, "renamed")

    def do_DELE(self, arg):
        if FILES.pop(arg, None) is None:
            self.reply(550, "no such file")
        else:
            self.reply(250, "deleted")

    def do_MKD(self, arg):
        self.reply(257, '"%s" created' % arg)

    def do_CWD(self, arg):
        self.reply(250, "ok")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Session)
print("PORT %d" % server.server_address[1], flush=True)
server.serve_forever()
