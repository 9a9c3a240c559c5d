#!/usr/bin/env python3
"""make-seeds.py - write the seed corpora of fuzz_mta_session and fuzz_child_link.

Usage: tests/fuzz/make-seeds.py [OUTDIR]   (default: tests/fuzz/corpus next to this file)

The seeds are the traffic of the integration scenarios (tests/integration: a Postfix-style
and a Sendmail-style session, several recipients, two messages with an abort between them,
NR events, a header-heavy and a body-heavy message, unknown commands) built frame by frame
in the milter wire format: 4-byte big-endian length of code + payload, 1-byte code, payload.
No recording mode exists in milterhub-mta (docs/tools.md), so building them here keeps the
seeds exact and reviewable. Each file starts with the target's mode byte (see the comment at
the top of fuzz_mta_session.c / fuzz_child_link.c). Deterministic: rerunning rewrites the
same bytes.
"""
import os
import struct
import sys


def frame(code, payload=b""):
    return struct.pack(">I", len(payload) + 1) + code.encode() + payload


def z(*strs):
    return b"".join(s.encode() + b"\0" for s in strs)


def optneg(version=6, actions=0x1FF, protocol=0, macros=None):
    p = struct.pack(">III", version, actions, protocol)
    for stage, names in (macros or {}).items():
        p += struct.pack(">I", stage) + z(names)
    return frame("O", p)


def macro(stage, *pairs):
    return frame("D", stage.encode() + z(*pairs))


def connect(host="mail.example.net", addr="192.0.2.1", port=54321, family="4"):
    return frame("C", z(host) + family.encode() + struct.pack(">H", port) + z(addr))


# ------------------------------------------------------------------ the MTA's side


def envelope(sender="<sender@example.net>", rcpts=("<rcpt@example.org>",), queue_id="4XyZ1"):
    out = macro("M", "{mail_addr}", sender.strip("<>"), "i", queue_id)
    out += frame("M", z(sender, "SIZE=1234"))
    for r in rcpts:
        out += macro("R", "{rcpt_addr}", r.strip("<>"))
        out += frame("R", z(r))
    return out


def content(headers=(("From", "sender@example.net"), ("Subject", "a test")),
            body_chunks=(b"Hello.\r\n",)):
    out = macro("T", "i", "4XyZ1") + frame("T")
    for name, value in headers:
        out += macro("L", "i", "4XyZ1") + frame("L", z(name, value))
    out += frame("N")
    for chunk in body_chunks:
        out += frame("B", chunk)
    out += macro("E", "i", "4XyZ1") + frame("E")
    return out


def postfix_session():
    return (optneg(6, 0x1FF, 0x1FFFFF)
            + macro("C", "j", "mx.example.org", "{daemon_name}", "mx.example.org", "v",
                    "Postfix 3.7.11")
            + connect() + macro("H") + frame("H", z("mail.example.net"))
            + envelope() + content() + frame("Q"))


def sendmail_session():
    return (optneg(2, 0x3F, 0x7F) + macro("C", "j", "mx.example.org", "_", "localhost")
            + connect("localhost", "127.0.0.1", 1025) + frame("H", z("localhost"))
            + envelope() + content() + frame("Q"))


def mta_seeds():
    multi = (optneg() + connect() + frame("H", z("mail.example.net"))
             + envelope(rcpts=("<a@example.org>", "<b@example.org>", "<c@example.org>"))
             + content() + frame("Q"))
    two_messages = (optneg() + connect() + frame("H", z("mail.example.net")) + envelope()
                    + frame("A") + envelope(queue_id="4XyZ2") + content() + frame("Q"))
    nr_events = (optneg(6, 0x1FF, 0x1FF000 | 0x80) + connect()
                 + frame("H", z("mail.example.net")) + envelope() + content() + frame("Q"))
    many_headers = (optneg() + connect() + frame("H", z("x")) + envelope()
                    + content(headers=[("X-H%d" % i, " value %d" % i) for i in range(20)])
                    + frame("Q"))
    big_body = (optneg() + connect() + frame("H", z("x")) + envelope()
                + content(body_chunks=[b"line %03d of the body\r\n" % i * 8 for i in range(6)])
                + frame("Q"))
    unknown = (optneg() + connect() + frame("U", z("XYZZY")) + frame("H", z("x"))
               + frame("H", z("again")) + envelope() + frame("K"))
    truncated = postfix_session()[:300]
    return {
        # name: (mode byte, stream); mode bits 0-1 children, 2 mods, 3 small body limit,
        # 4-5 write size
        "postfix-no-child": (0x00, postfix_session()),
        "postfix-fake-child": (0x01, postfix_session()),
        "postfix-fake-child-mods": (0x05, postfix_session()),
        "postfix-missing-child": (0x02, postfix_session()),
        "sendmail-fake-child": (0x01, sendmail_session()),
        "multi-rcpt-bytewise": (0x11, multi),
        "two-messages-abort": (0x05, two_messages),
        "nr-events": (0x01, nr_events),
        "many-headers-7byte": (0x21, many_headers),
        "big-body-tempfile": (0x0D, big_body),
        "unknown-helo-twice": (0x31, unknown),
        "truncated": (0x01, truncated),
    }


# ----------------------------------------------------------------- the child's side


def reply(code, payload=b""):
    return frame(code, payload)


CONT = reply("c")
# Commands of fuzz_child_link's first message: C H M R R T L L N B B E.
FIRST = "CHMRRTLLNBBE"


def child_seeds():
    all_cont = CONT * len(FIRST)
    mods = (CONT * (len(FIRST) - 1) + reply("h", z("X-Added", "yes"))
            + reply("i", struct.pack(">I", 1) + z("X-First", "1"))
            + reply("m", struct.pack(">I", 1) + z("Subject", "changed"))
            + reply("+", z("<new@example.org>")) + reply("-", z("<rcpt@example.org>"))
            + reply("2", z("<par@example.org>", "NOTIFY=NEVER"))
            + reply("e", z("<from@example.org>")) + reply("b", b"new body\r\n")
            + reply("q", z("fuzz")) + reply("p") + reply("a"))
    second = "MRTLNBE"
    return {
        # name: (flags byte, stream); flags bit 0 prepends an 'O' (the next 4 bytes are its
        # protocol flags), bit 1 abort + second message, bit 2 free instead of quit
        "all-continue": (0x01, struct.pack(">I", 0) + all_cont),
        "own-optneg": (0x00, optneg(6, 0x1FF, 0) + all_cont),
        "own-optneg-lists": (0x00, optneg(6, 0x1FF, 0, {0: "j {daemon_name}", 2: "i"})
                             + all_cont),
        "eom-modifications": (0x01, struct.pack(">I", 0) + mods),
        "reject-at-rcpt": (0x01, struct.pack(">I", 0) + CONT * 3 + reply("r") + CONT * 8),
        "replycode-tempfail": (0x01, struct.pack(">I", 0) + CONT * 2
                               + reply("y", z("451 4.7.1 try later"))),
        "nr-and-no-flags": (0x01, struct.pack(">I", 0x1FF000 | 0x10 | 0x02) + all_cont),
        "abort-second-message": (0x03, struct.pack(">I", 0) + CONT * 3 + CONT
                                 + CONT * len(second)),
        "skip-body": (0x01, struct.pack(">I", 0x400) + CONT * 9 + reply("s") + CONT * 2),
        "mod-wrong-stage": (0x01, struct.pack(">I", 0) + CONT + reply("h", z("X", "y"))),
        "progress-then-accept": (0x05, struct.pack(">I", 0) + CONT * 11 + reply("p") * 3
                                 + reply("a")),
        "shutdown": (0x01, struct.pack(">I", 0) + CONT * 4 + reply("4")),
        "oversize": (0x01, struct.pack(">I", 0) + CONT + struct.pack(">I", 0x7FFFFFFF) + b"c"),
        "v2-child": (0x00, optneg(2, 0x3F, 0x7F) + all_cont),
    }


def write(outdir, target, seeds):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    for name, (mode, stream) in seeds.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(bytes([mode]) + stream)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    write(outdir, "fuzz_mta_session", mta_seeds())
    write(outdir, "fuzz_child_link", child_seeds())


if __name__ == "__main__":
    main()
