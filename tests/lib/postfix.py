"""
postfix - a private Debian Postfix instance per test, on loopback (interop suite).

Standard library only; used with harness.Env:

    pf = postfix.Postfix(env, milters="unix:/path/hub.sock")   # smtpd_milters
    pf.start()                      # master + smtp-sink running, smtpd on 127.0.0.1:pf.port
    r = pf.send("<s@example.net>", ["<a@example.org>"], subject="hi")
    r.rcpt_codes  ->  {"<a@example.org>": (250, "2.1.5 Ok")}
    r.data_code   ->  250 / 4xx / 5xx / None (no DATA: every recipient refused)
    m = pf.delivered(1)[0]          # what smtp-sink received (headers as Postfix relayed them)
    m.header("X-Libmilter")  m.headers  m.rcpts  m.body

What the instance is (shared/docs/testing-with-real-mtas.md):
  - its own config_directory (TMP/pf/etc), queue_directory (TMP/pf/spool) and data_directory
    (TMP/pf/data, owned by postfix); a fixed master.cf written here with chroot off and the
    smtpd listener on 127.0.0.1:PORT (a free port); main.cf back-dated one minute (a fresh
    one makes every Postfix program wait ~2.4 s for it to age);
  - myhostname set, inet_protocols = ipv4, mynetworks = 127.0.0.0/8, smtpd_relay_restrictions
    = permit_mynetworks, reject, nothing local (mydestination empty), no DNS (client name
    lookup off, relayhost given as [127.0.0.1]:SINKPORT), maillog_file = TMP/pf/maillog;
  - smtpd_milters = the given spec(s) (unix:/path or inet:127.0.0.1:PORT), milter_protocol =
    6, milter_default_action = tempfail (a broken milter shows as 4xx, not silent delivery);
  - everything is relayed to a Postfix `smtp-sink -u postfix -d TMP/pf/sink/%M.` on
    127.0.0.1:SINKPORT, which dumps each delivered transaction to a file;
  - the master runs in the foreground (`master -d -c DIR`, no `postfix start`: its checks
    cost seconds) as a harness Proc in its own process group, so stopping it (SIGTERM to
    the master, which passes it on to its children, then SIGKILL to the group) leaves no
    smtpd/qmgr/cleanup behind; stop() checks that no process of this instance is left.

A unix milter socket must be connectable by user postfix (smtpd runs as postfix): the test's
temp dir is opened for search (0711) and the socket itself must be mode 0666 (or owned by
postfix) — e.g. the hub's `socket_mode = "0666"`, or world_writable_umask() for a program that
creates its socket with the process umask (libmilter).

Missing postfix binaries → harness.skip() with the reason (scripts/install-deps installs them).
"""

import grp
import os
import pwd
import re
import signal
import smtplib
import time

import harness

POSTFIX_DAEMONS = "/usr/lib/postfix/sbin"
MASTER = os.path.join(POSTFIX_DAEMONS, "master")
SMTP_SINK = "/usr/sbin/smtp-sink"

# Services this instance needs; chroot (5th column) off everywhere. The smtpd line is
# added per instance. Limits kept small: a test sends a handful of messages.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# queue_directory subdirectories: (name, mode, group) — what `postfix check` would create.
QUEUE_DIRS = [
    ("active", 0o700, None), ("bounce", 0o700, None), ("corrupt", 0o700, None),
    ("defer", 0o700, None), ("deferred", 0o700, None), ("flush", 0o700, None),
    ("hold", 0o700, None), ("incoming", 0o700, None), ("private", 0o700, None),
    ("saved", 0o700, None), ("trace", 0o700, None),
    ("maildrop", 0o730, "postdrop"), ("public", 0o710, "postdrop"),
]


def require_postfix():
    """Skip the test (with the reason) when Debian's Postfix is not installed."""
    missing = [p for p in (MASTER, SMTP_SINK) if not os.access(p, os.X_OK)]
    if missing:
        harness.skip("Postfix not installed (%s missing; scripts/install-deps installs postfix)"
                     % ", ".join(missing))
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        harness.skip("Postfix not installed (no user postfix / group postdrop)")


def world_writable_umask(argv):
    """argv wrapped so the program runs with umask 000: a unix socket it creates with the
    process umask (libmilter does) is then connectable by user postfix."""
    return ["/bin/sh", "-c", 'umask 000 && exec "$0" "$@"'] + list(argv)


def open_for_postfix(path):
    """Let user postfix traverse `path` (the test's 0700 temp dir) to reach a socket in it."""
    st = os.stat(path)
    os.chmod(path, (st.st_mode & 0o7777) | 0o711)


class SmtpResult:
    """What the SMTP client saw for one message."""

    def __init__(self):
        self.greeting = None     # (code, text) of the banner
        self.ehlo_code = None    # (code, text)
        self.rcpt_codes = {}     # rcpt -> (code, text)
        self.mail_code = None    # (code, text); None when not reached
        self.data_code = None    # int, None when DATA was not reached
        self.data_text = None
        self.queue_id = None     # from "250 2.0.0 Ok: queued as ID"

    def replies(self):
        """Every (code, text) the client got, in order (banner, EHLO, MAIL, RCPTs, DATA)."""
        out = [c for c in (self.greeting, self.ehlo_code, self.mail_code) if c is not None]
        out += list(self.rcpt_codes.values())
        if self.data_code is not None:
            out.append((self.data_code, self.data_text))
        return out

    def first_failure(self):
        """The first reply that is not 2xx (the banner's 220 counts as success), or None."""
        return next((c for c in self.replies() if c[0] // 100 != 2), None)

    def __repr__(self):
        return "SmtpResult(greeting=%r, ehlo=%r, mail=%r, rcpts=%r, data=%r %r)" % (
            self.greeting, self.ehlo_code, self.mail_code, self.rcpt_codes, self.data_code,
            self.data_text)


class Delivered:
    """One message smtp-sink dumped: its envelope and the message as Postfix relayed it."""

    def __init__(self, path, text):
        self.path, self.text = path, text
        head, _, self.body = text.replace("\r\n", "\n").partition("\n\n")
        lines = []
        for ln in head.split("\n"):
            if ln[:1] in (" ", "\t") and lines:
                lines[-1] += "\n" + ln
            elif ln:
                lines.append(ln)
        # smtp-sink's own records first (X-Client-Addr, ... X-Rcpt-Args, its 3-line Received),
        # then the message as received.
        self.all_headers = []
        for ln in lines:
            name, _, value = ln.partition(":")
            self.all_headers.append((name, value[1:] if value.startswith(" ") else value))
        self.rcpt_args = [v for n, v in self.all_headers if n == "X-Rcpt-Args"]
        self.rcpts = [v.split()[0] for v in self.rcpt_args if v.split()]
        self.mail = next((v for n, v in self.all_headers if n == "X-Mail-Args"), None)
        # Drop the sink's records and its Received (the first Received; the next ones are
        # Postfix's own).
        hs = [h for h in self.all_headers if not h[0].startswith("X-Client-")
              and h[0] not in ("X-Helo-Args", "X-Mail-Args", "X-Rcpt-Args")]
        if hs and hs[0][0] == "Received":
            hs = hs[1:]
        self.headers = hs

    def header(self, name):
        """Values of every header with that name (case-insensitive), in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return "Delivered(rcpts=%r, headers=%r)" % (self.rcpts, [h[0] for h in self.headers])


class Postfix:
    def __init__(self, env, milters=None, hostname="mta.example.org", main_extra=None,
                 name="pf"):
        """`milters`: a spec or a list of specs for smtpd_milters (Postfix or Sendmail
        form; inet:PORT@HOST is converted). `main_extra`: dict of more main.cf settings."""
        require_postfix()
        self.env = env
        self.dir = env.path(name)
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.data = os.path.join(self.dir, "data")
        self.sink_dir = os.path.join(self.dir, "sink")
        self.maillog = os.path.join(self.dir, "maillog")
        self.hostname = hostname
        if milters is None:
            milters = []
        elif isinstance(milters, str):
            milters = [milters]
        self.milters = [self._postfix_spec(m) for m in milters]
        self.main_extra = dict(main_extra or {})
        self.port = None
        self.sink_port = None
        self.master = None
        self.sink = None

    @staticmethod
    def _postfix_spec(spec):
        m = re.match(r"^inet:(\d+)@(.+)$", spec)
        if m:
            return "inet:%s:%s" % (m.group(2), m.group(1))
        if spec.startswith("local:"):
            return "unix:" + spec[len("local:"):]
        return spec

    # ------------------------------------------------------------ set-up

    def _write_config(self):
        if os.geteuid() != 0:
            raise AssertionError("a private Postfix needs root (its master starts as root and "
                                 "its directories are chowned to user postfix)")
        pf_uid = pwd.getpwnam("postfix").pw_uid
        pf_gid = pwd.getpwnam("postfix").pw_gid
        postdrop_gid = grp.getgrnam("postdrop").gr_gid
        open_for_postfix(self.env.tmp)
        os.makedirs(self.etc)
        os.chmod(self.dir, 0o755)
        os.makedirs(self.spool, 0o755)
        for sub, mode, group in QUEUE_DIRS:
            p = os.path.join(self.spool, sub)
            os.mkdir(p)
            os.chown(p, pf_uid, postdrop_gid if group else pf_gid)
            os.chmod(p, mode)
        os.mkdir(os.path.join(self.spool, "pid"), 0o755)  # root-owned, as Postfix has it
        os.mkdir(self.data)
        os.chown(self.data, pf_uid, pf_gid)
        os.chmod(self.data, 0o700)
        os.mkdir(self.sink_dir)
        os.chown(self.sink_dir, pf_uid, pf_gid)
        os.chmod(self.sink_dir, 0o755)

        self.port = harness.free_port()
        self.sink_port = harness.free_port()
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "syslog_name": "postfix-%s" % os.path.basename(self.env.tmp),
            "maillog_file": self.maillog,
            # Default "/var, /dev/stdout": any other log path is fatal (and silent: the
            # refusal cannot be logged).
            "maillog_file_prefixes": self.dir,
            "myhostname": self.hostname,
            "mydomain": "example.org",
            "myorigin": "$myhostname",
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "local_transport": "error:no local delivery",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "",
            "smtpd_peername_lookup": "no",
            "smtpd_banner": "$myhostname ESMTP private test instance",
            "relayhost": "[127.0.0.1]:%d" % self.sink_port,
            "smtp_host_lookup": "native",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "biff": "no",
            "smtputf8_enable": "no",
            "append_dot_mydomain": "no",
            "delay_warning_time": "0",
            "queue_run_delay": "300s",
            "minimal_backoff_time": "300s",
            "in_flow_delay": "0",
            # Milters.
            "smtpd_milters": ", ".join(self.milters),
            "non_smtpd_milters": "",
            "milter_protocol": "6",
            "milter_default_action": "tempfail",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "10s",
            "milter_content_timeout": "20s",
        }
        main.update(self.main_extra)
        main_cf = os.path.join(self.etc, "main.cf")
        with open(main_cf, "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF)
            f.write("127.0.0.1:%d inet n       -       n       -       -       smtpd\n"
                    % self.port)
        # A main.cf younger than a few seconds makes every Postfix program wait for it to age.
        past = time.time() - 60
        for fn in ("main.cf", "master.cf"):
            os.utime(os.path.join(self.etc, fn), (past, past))
        open(self.maillog, "a").close()

    def start(self, wait=15.0):
        """Write the configuration, start smtp-sink and the master; return when smtpd's
        port listens (bounded: fails with the master's stderr and the maillog)."""
        self._write_config()
        # smtp-sink: -u is required as root; -d dumps each transaction to its own file;
        # -c would print counters; backlog 16.
        self.sink = self.env.start(
            "smtp-sink", [SMTP_SINK, "-u", "postfix", "-d", self.sink_dir + "/%M.",
                          "-h", "sink.example.org", "127.0.0.1:%d" % self.sink_port, "16"],
            ready="inet:%d@127.0.0.1" % self.sink_port, grace=1.0, wrap=False)
        # Foreground master (-d keeps its stderr, where start-up errors go); its own
        # process group, so the harness's stop reaches every child too.
        self.master = self.env.start(
            "postfix-master", [MASTER, "-d", "-c", self.etc],
            grace=5.0, wrap=False)
        deadline = time.monotonic() + wait * harness.SLOW
        while not harness.spec_listening("inet:%d@127.0.0.1" % self.port):
            if self.master.popen.poll() is not None or time.monotonic() >= deadline:
                raise AssertionError(
                    "private Postfix did not listen on 127.0.0.1:%d (master %s); stderr:\n%s\n"
                    "maillog:\n%s" % (self.port,
                                      "exited %s" % self.master.popen.returncode
                                      if self.master.popen.poll() is not None else "running",
                                      self.master.stderr()[-2000:], self.log_tail()))
            time.sleep(0.02)
        self.env.note("private Postfix: %s (maillog %s)" % (self.etc, self.maillog))
        return self

    # ------------------------------------------------------------- SMTP

    def smtp(self, timeout=30.0, res=None):
        """A connected smtplib.SMTP to this instance's smtpd, after EHLO. The banner and EHLO
        replies go to `res` (an SmtpResult) when given; a banner other than 220 (Postfix
        sends a milter's 421 at connect instead of it) leaves EHLO out."""
        res = res if res is not None else SmtpResult()
        s = smtplib.SMTP(local_hostname="client.example.net", timeout=timeout * harness.SLOW)
        code, text = s.connect("127.0.0.1", self.port)
        res.greeting = (code, text.decode("utf-8", "replace"))
        if code == 220:
            code, text = s.ehlo()
            res.ehlo_code = (code, text.decode("utf-8", "replace"))
        return s

    @staticmethod
    def message(mail_from, rcpts, subject="milterhub interop", body="Hello from the test.\n",
                headers=()):
        strip = lambda a: a.strip("<>")
        lines = ["From: %s" % strip(mail_from), "To: %s" % ", ".join(strip(r) for r in rcpts),
                 "Subject: %s" % subject,
                 "Message-ID: <%d.%d@client.example.net>" % (os.getpid(), time.monotonic_ns()),
                 "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())]
        lines += list(headers)
        return "\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")

    def send(self, mail_from, rcpts, msg=None, conn=None, **kw):
        """One transaction (on `conn`, or on a new connection closed with QUIT after it).
        Returns SmtpResult; never raises on 4xx/5xx answers (the transaction stops at the
        first refusal that ends it: banner, EHLO, MAIL, all RCPTs, DATA). The server closing
        the connection right after a 421 is such an answer too; any other I/O trouble raises
        AssertionError with the maillog's tail."""
        res = SmtpResult()
        own = conn is None
        s = None
        try:
            s = conn or self.smtp(res=res)
            self._transaction(s, res, mail_from, rcpts, msg, kw)
        except (smtplib.SMTPException, OSError) as e:
            last = res.replies()[-1] if res.replies() else None
            if not (isinstance(e, smtplib.SMTPServerDisconnected) and last and last[0] == 421):
                raise AssertionError("SMTP session with the private Postfix failed: %r (%r)\n"
                                     "maillog:\n%s" % (e, res, self.log_tail()))
        finally:
            if own and s is not None:
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    s.close()
        return res

    def _transaction(self, s, res, mail_from, rcpts, msg, kw):
        def ok2(reply):
            return reply is not None and reply[0] // 100 == 2
        if res.greeting is not None and res.greeting[0] != 220:
            return
        if res.ehlo_code is not None and not ok2(res.ehlo_code):
            return
        code, text = s.mail(_bare(mail_from))
        res.mail_code = (code, text.decode("utf-8", "replace"))
        if not ok2(res.mail_code):
            return
        accepted = []
        for r in rcpts:
            code, text = s.rcpt(_bare(r))
            res.rcpt_codes[r] = (code, text.decode("utf-8", "replace"))
            if code // 100 == 2:
                accepted.append(r)
            elif code == 421:
                return
        if not accepted:
            s.rset()
            return
        data = msg if msg is not None else self.message(mail_from, rcpts, **kw)
        try:
            code, text = s.data(data.encode("utf-8"))
        except smtplib.SMTPDataError as e:  # DATA itself refused (no 354)
            code, text = e.smtp_code, e.smtp_error
        res.data_code = code
        res.data_text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        m = re.search(r"queued as (\S+)", res.data_text)
        res.queue_id = m.group(1) if m else None

    # ------------------------------------------------------- read-back

    def delivered(self, count=1, timeout=10.0):
        """The messages smtp-sink received: waits (bounded) until `count` are there and
        fails with the maillog's tail when they are not."""
        deadline = time.monotonic() + timeout * harness.SLOW
        while True:
            found = self._dumps()
            if len(found) >= count or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if len(found) < count:
            raise AssertionError("expected %d message(s) delivered to smtp-sink, got %d\n"
                                 "maillog:\n%s" % (count, len(found), self.log_tail()))
        return found

    def _dumps(self):
        out = []
        for fn in sorted(os.listdir(self.sink_dir)):
            p = os.path.join(self.sink_dir, fn)
            try:
                with open(p, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            # smtp-sink writes the file while the transaction runs; a dump is complete once
            # it ends with the empty line after the message.
            if text.endswith("\n\n") or text.endswith("\r\n\r\n"):
                out.append((os.stat(p).st_mtime, Delivered(p, text)))
        return [d for _, d in sorted(out, key=lambda x: x[0])]

    def queue_files(self):
        """Queue files still in incoming/active/deferred/hold (a tempfailed message is not
        queued at all; this is for diagnosis)."""
        n = 0
        for sub in ("incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.spool, sub)):
                n += len(files)
        return n

    def log_tail(self, n=25):
        try:
            with open(self.maillog, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no maillog)"
        return "\n".join("  " + ln for ln in lines[-n:])

    def milter_warnings(self):
        """Postfix's warnings about its milters (connect/read/write failures, protocol
        errors, timeouts): a milter that answered, even with tempfail, leaves none."""
        return [ln for ln in self.log().splitlines()
                if re.search(r"(warning|error|fatal|panic): .*milter", ln, re.I)]

    def wait_milter_warning(self, text, timeout=3.0):
        """Wait (bounded) until a milter warning containing `text` is in the maillog:
        postlogd writes the file asynchronously, after smtpd has already answered."""
        deadline = time.monotonic() + timeout
        while True:
            if any(text in w for w in self.milter_warnings()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def log(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # ------------------------------------------------------------ stop

    def instance_pids(self):
        """Pids of every process of this instance (its config dir on the command line or
        in MAIL_CONFIG, or in the master's process group)."""
        return live_pids(self.etc, self.master.pid if self.master else None,
                         env=b"MAIL_CONFIG=" + self.etc.encode())

    def stop(self, wait=5.0):
        """SIGTERM to the master (it passes it on to its children), then make sure every
        process of this instance is gone (SIGKILL to stragglers); stop smtp-sink.
        Fails when something of the instance survived. (Children the master left behind
        may show as zombies for a moment, until init reaps them: they are not running.)
        Without a call, the harness stops the master's whole process group at the end of
        the test anyway."""
        stop_instance("Postfix", self.master, self.instance_pids, wait)
        if self.sink is not None:
            self.sink.stop()


def live_pids(marker, pgid, env=None):
    """Pids of running processes (zombies aside) that belong to a private MTA instance:
    `marker` (a path) on their command line, in process group `pgid`, or `env` (bytes,
    "NAME=value") in their environment."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                # "pid (comm) S ...": a zombie (Z) is dead already, waiting for init to
                # reap it (an MTA's children are orphaned when it exits).
                if f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X"):
                    continue
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                mine = marker.encode() in f.read().split(b"\0")
            if not mine and pgid is not None:
                mine = os.getpgid(pid) == pgid
            if not mine and env is not None:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    mine = env in f.read().split(b"\0")
        except (OSError, ProcessLookupError):
            continue
        if mine:
            pids.append(pid)
    return pids


def stop_instance(what, leader, pids, wait):
    """SIGTERM to `leader` (a harness Proc, or None), wait, SIGKILL its group, then SIGKILL
    whatever `pids()` still finds until none is left; fail if some survive `wait` s."""
    if leader is None:
        return
    if leader.popen.poll() is None:
        try:
            os.kill(leader.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            leader.popen.wait(timeout=wait)
        except Exception:  # noqa: BLE001 - SIGKILL below
            pass
    leader.stop()  # SIGKILL to the group if anything is left, reaps
    deadline = time.monotonic() + wait
    left = pids()
    while left and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        left = pids()
    if left:
        raise AssertionError("private %s: processes left after stop: %r" % (what, left))


def _bare(addr):
    """smtplib adds the angle brackets itself."""
    a = addr.strip()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    return a
