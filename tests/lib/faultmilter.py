#!/usr/bin/env python3
"""
faultmilter - a small forking milter that misbehaves on purpose, for the
fault matrix (tests/integration/fault_matrix.py).

  faultmilter.py --listen unix:PATH --stage STAGE --fault FAULT --dir DIR
                 [--trigger PREFIX]

One process per connection (fork), so one connection's process can be
SIGKILLed while the others go on. A connection is faulty when its CONNECT
hostname starts with PREFIX (default "fault"); any other connection is a
plain milter answering continue to everything. On a faulty connection, at
the first command of STAGE (connect helo mail rcpt data header eoh body eom
unknown) the FAULT happens:

  close    close the connection
  hang     never answer (keep reading until EOF)
  garbage  a frame with the unknown reply code 'Z'
  biglen   a frame header announcing 0x80000000 bytes (and a few bytes)
  illegal  a reply not allowed there: 'h' (add header) before end-of-message,
           an 'O' (negotiation reply) at end-of-message
  sigkill  like hang; the test SIGKILLs this connection's process

When the fault fires, DIR/hit.PID is written (content: the stage), so the
test knows the moment and the process to kill.

Standard library only.
"""

import argparse
import os
import signal
import socket
import struct
import sys

CODES = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data",
         b"L": "header", b"N": "eoh", b"B": "body", b"E": "eom", b"U": "unknown"}


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def frame(code, payload=b""):
    return struct.pack(">I", len(payload) + 1) + code + payload


def serve(conn, args):
    faulty = False
    fired = False
    while True:
        head = recv_exact(conn, 4)
        if head is None:
            return
        n = struct.unpack(">I", head)[0]
        if n == 0 or n > 1 << 24:
            return
        body = recv_exact(conn, n)
        if body is None:
            return
        code, payload = body[:1], body[1:]
        if fired:
            continue  # hang / sigkill: read, never answer
        if code == b"O":
            ver, actions, _proto = struct.unpack(">III", payload[:12])
            conn.sendall(frame(b"O", struct.pack(">III", min(ver, 6), actions, 0)))
            continue
        if code in (b"D", b"A", b"K"):
            continue
        if code == b"Q":
            return
        if code == b"C":
            faulty = payload.split(b"\0", 1)[0].decode("latin-1").startswith(args.trigger)
        stage = CODES.get(code)
        if stage is None:
            conn.sendall(frame(b"c"))
            continue
        if faulty and stage == args.stage:
            fired = True
            with open(os.path.join(args.dir, "hit.%d" % os.getpid()), "w") as f:
                f.write(stage)
            if args.fault == "close":
                return
            if args.fault == "garbage":
                conn.sendall(frame(b"Z"))
            elif args.fault == "biglen":
                conn.sendall(struct.pack(">I", 0x80000000) + b"c" * 16)
            elif args.fault == "illegal":
                if stage == "eom":
                    conn.sendall(frame(b"O", struct.pack(">III", 6, 0x1FF, 0)))
                else:
                    conn.sendall(frame(b"h", b"X-Illegal\0at " + stage.encode() + b"\0"))
            # hang, sigkill: nothing; garbage/biglen/illegal: wait for the hub to close
            continue
        conn.sendall(frame(b"c"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--stage", required=True)
    ap.add_argument("--fault", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--trigger", default="fault")
    args = ap.parse_args()
    path = args.listen.split(":", 1)[1]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    while True:
        try:
            conn, _ = lst.accept()
        except InterruptedError:
            continue
        pid = os.fork()
        if pid == 0:
            lst.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                serve(conn, args)
            except OSError:
                pass
            finally:
                try:
                    conn.close()
                finally:
                    os._exit(0)
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
