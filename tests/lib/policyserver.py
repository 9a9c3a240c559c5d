"""
policyserver - a scripted Postfix policy server for tests (standard library only).

Speaks the Postfix policy delegation protocol (SMTPD_POLICY_README): a request is
"name=value\\n" lines ended by an empty line, the answer "action=VALUE\\n\\n"; any number of
requests per connection, one at a time.

    ps = policyserver.start(env, lambda a: "REJECT" if a["recipient"] == "a@x" else "DUNNO")
    ps.spec                  "inet:PORT@127.0.0.1" (or "unix:/path" with unix=True)
    ...                      (run sessions through the hub)
    ps.requests              [Request(attrs, conn, t), ...] in arrival order
    ps.attrs()               [attrs dict, ...]
    ps.opened, ps.max_open   connections accepted in total / most open at the same time
    ps.open_now              connections open now
    ps.wait_requests(n)      wait (bounded) until n requests arrived

`answer` is a string (the same action for every request) or a function of the request's
attribute dict returning one of:
  - an action string, e.g. "DUNNO", "REJECT no", "450 4.7.1 later", "" (sent as "action=");
  - HANG: never answer this request (the connection stays open and is still read);
  - CLOSE: close the connection without answering;
  - PARTIAL: send half an answer line ("action=DU"), then close;
  - GARBAGE: answer with a line that is not name=value ("this is not a policy answer");
  - Delay(seconds, action): answer `action` (any of the above) after a delay.

start(env, ...) registers the server's stop() with env.cleanup (harness), so it is stopped
when the test ends whatever happened; PolicyServer(...).start()/.stop() works without an Env.
"""

import collections
import os
import socket
import threading
import time

HANG = object()
CLOSE = object()
PARTIAL = object()
GARBAGE = object()

Delay = collections.namedtuple("Delay", "seconds action")
Request = collections.namedtuple("Request", "attrs conn t")


class PolicyServer:
    def __init__(self, answer="DUNNO", unix_path=None, host="127.0.0.1", port=0):
        self.answer = answer
        self.unix_path, self.host, self.port = unix_path, host, port
        self.requests = []
        self.opened = 0
        self.open_now = 0
        self.max_open = 0
        self.errors = []  # exceptions in connection threads (a bug in this server)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._conns = {}
        self._threads = []
        self._lsock = None

    # ---------------------------------------------------------------- control

    @property
    def spec(self):
        if self.unix_path:
            return "unix:" + self.unix_path
        return "inet:%d@%s" % (self.port, self.host)

    def start(self):
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.unix_path)
            os.chmod(self.unix_path, 0o666)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            self.port = s.getsockname()[1]
        s.listen(128)
        self._lsock = s
        t = threading.Thread(target=self._accept_loop, name="policyserver-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        """Stop listening, close every connection, join the threads (bounded)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            # Wake the accept() up: shutdown works on a listening socket on Linux.
            self._lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._lsock.close()
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(5)
        if self.unix_path:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass

    # ---------------------------------------------------------------- results

    def attrs(self):
        with self._lock:
            return [r.attrs for r in self.requests]

    def wait_requests(self, n, timeout=10.0):
        """Wait until at least n requests arrived; returns the request list."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("policy server: %d request(s) within %.1fs, expected %d"
                                         % (len(self.requests), timeout, n))
                self._lock.wait(left)
            return list(self.requests)

    def wait_idle(self, timeout=5.0):
        """Wait until no connection is open (e.g. after the hub stopped)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.open_now and time.monotonic() < deadline:
                self._lock.wait(0.05)
            return self.open_now

    def summary(self):
        with self._lock:
            return ("policy server %s: %d request(s), %d connection(s) opened, %d open now, "
                    "at most %d at once" % (self.spec, len(self.requests), self.opened,
                                            self.open_now, self.max_open))

    # ---------------------------------------------------------------- serving

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            if self._stop.is_set():
                c.close()
                return
            with self._lock:
                self.opened += 1
                cid = self.opened
                self.open_now += 1
                self.max_open = max(self.max_open, self.open_now)
                self._conns[cid] = c
            t = threading.Thread(target=self._serve, args=(c, cid), daemon=True,
                                 name="policyserver-%d" % cid)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _decide(self, attrs):
        a = self.answer
        return a(attrs) if callable(a) else a

    def _serve(self, c, cid):
        buf = b""
        attrs = {}
        try:
            while not self._stop.is_set():
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    line = line.decode("utf-8", "replace").rstrip("\r")
                    if line:
                        name, _, value = line.partition("=")
                        attrs[name] = value
                        continue
                    req, attrs = attrs, {}
                    with self._lock:
                        self.requests.append(Request(req, cid, time.monotonic()))
                        self._lock.notify_all()
                    if not self._reply(c, req):
                        return
        except Exception as e:  # noqa: BLE001 - kept for the test to see
            self.errors.append(repr(e))
        finally:
            try:
                c.close()
            except OSError:
                pass
            with self._lock:
                self.open_now -= 1
                self._conns.pop(cid, None)
                self._lock.notify_all()

    def _reply(self, c, req):
        """Answer one request; False when the connection is to be closed."""
        action = self._decide(req)
        if isinstance(action, Delay):
            if self._stop.wait(action.seconds):
                return False
            action = action.action
        if action is HANG:
            return True
        if action is CLOSE:
            return False
        try:
            if action is PARTIAL:
                c.sendall(b"action=DU")
                return False
            if action is GARBAGE:
                c.sendall(b"this is not a policy answer\n\n")
                return True
            c.sendall(("action=%s\n\n" % action).encode("utf-8"))
        except OSError:
            return False
        return True


def start(env, answer="DUNNO", unix=False):
    """Start a PolicyServer for this test (TCP on 127.0.0.1, or a unix socket in env.tmp);
    it is stopped at the end of the test."""
    path = env.unix_spec()[len("unix:"):] if unix else None
    ps = PolicyServer(answer, unix_path=path).start()
    env.cleanup(ps.stop)
    return ps
