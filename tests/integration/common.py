"""
common - shared facts of the integration suite, taken from docs/tools.md:
the simulator's defaults and the order of events of one SMTP session.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from harness import (eq, ok, skip, stage, stages, stage_names, header_list,  # noqa: E402,F401
                     register, test, fnv1a64, free_port, SLOW)

SENDER = "<sender@example.net>"
RCPT = "<rcpt@example.org>"
CLIENT_NAME = "mx.example.net"
CLIENT_ADDR = "192.0.2.1"
CLIENT_PORT = 54321
BODY = "Hello from milterhub-mta.\r\n"

# Default headers (docs/tools.md), Message-ID aside: its N is not pinned.
DEFAULT_HEADERS = [("From", "sender@example.net"), ("To", "rcpt@example.org"),
                   ("Subject", "milterhub test")]

# Postfix default macro values of the simulator (docs/tools.md "On the wire").
CONNECT_MACROS = {"j": "mta.example.org", "{daemon_name}": "mta.example.org",
                  "{daemon_addr}": "127.0.0.1", "v": "Postfix 3.7.11",
                  "_": "mx.example.net [192.0.2.1]"}

# Order of the events of a session with one message and --unknown.
ORDER = ["connect", "helo", "unknown", "mail", "rcpt", "data", "header", "eoh", "body", "eom"]
MESSAGE_EVENTS = ["mail", "rcpt", "data", "header", "eoh", "body", "eom"]


def visible_headers(report):
    """The report's headers without the simulator's hidden Received: and
    without Message-ID (whose number the contract leaves open)."""
    return [h for h in header_list(report) if h[0] not in ("Received", "Message-ID")]


def events_after(cmds, event):
    """The message events logged after the first `event`."""
    i = cmds.index(event)
    return [c for c in cmds[i + 1:] if c in MESSAGE_EVENTS]


# How several actions for one stage are given to the testmilter (docs/tools.md:
# "several per stage run in order"): one --on per action, in order.
ON_SEPARATE = True


def on(stage, *actions):
    """argv for `--on STAGE=ACTION...` (several actions run in order)."""
    if ON_SEPARATE:
        out = []
        for a in actions:
            out += ["--on", "%s=%s" % (stage, a)]
        return out
    return ["--on", "%s=%s" % (stage, ",".join(actions))]
