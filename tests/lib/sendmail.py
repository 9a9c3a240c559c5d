"""
sendmail - a private Debian Sendmail instance per test, on loopback (interop suite).

Standard library only; used with harness.Env, shaped like postfix.Postfix:

    sm = sendmail.Sendmail(env, milters="unix:/path/hub.sock")   # INPUT_MAIL_FILTER(`hub')
    sm.start()                      # smtp-sink + `sendmail -bD` running on 127.0.0.1:sm.port
    r = sm.send("<s@example.net>", ["<a@example.org>"], subject="hi")   # postfix.SmtpResult
    m = sm.delivered(1)[0]          # what smtp-sink received (postfix.Delivered)
    sm.stop()

Where Sendmail comes from: Debian's sendmail-bin Conflicts with postfix (both provide
mail-transport-agent), so it is not installed. scripts/install-deps fetches sendmail-bin,
sendmail-cf and sendmail-base with `apt-get download` and unpacks them (dpkg-deb -x) into
/opt/milterhub-test/sendmail (SM_ROOT below); the runtime libraries and m4 are installed as
ordinary packages. Missing → harness.skip() with the reason.

What the instance is:
  - a sendmail.cf built with m4 from the unpacked sendmail-cf tree and a small .mc (written
    next to it, TMP/sm/sendmail.mc): DAEMON_OPTIONS on 127.0.0.1:PORT only (no default MSA
    on 587: FEATURE(no_default_msa)), $j = mta.example.org, no DNS (service switch file
    "hosts files", FEATURE(nocanonify), ResolverOptions -DNSRCH -DEFNAMES, no interface
    probing), everything relayed to smtp-sink (SMART_HOST [127.0.0.1], relay/esmtp mailer
    args `TCP $h SINKPORT`), promiscuous relay (loopback only), no ident, load-average limits
    off (QueueLA/RefuseLA 999: a busy test box must not make Sendmail queue or refuse),
    QueueDirectory/PidFile/StatusFile under TMP/sm, DontBlameSendmail=TrustStickyBit (the
    milter socket lives under /tmp, which Sendmail calls unsafe otherwise and exits 71);
  - INPUT_MAIL_FILTER per milter, F=T (tempfail when unreachable), T=C:5s;S:10s;R:20s;E:60s;
    the Milter.macros.* options left at Sendmail's defaults (its own macro set is the point);
  - run as `sendmail -bD -C CF -X TRAFFIC` (foreground daemon, a harness Proc in its own
    process group; -X logs every SMTP line in and out, there is no syslog here), inside
    `unshare --uts --mount`: hostname mta.example.org, and /etc/hosts, /etc/nsswitch.conf,
    /etc/resolv.conf bind-mounted from TMP/sm (hosts: files; nameserver 127.0.0.1). Sendmail
    qualifies the host name *before* reading its configuration; an unqualified name it
    cannot qualify costs `sleep(60)` ("My unqualified host name ... unknown; sleeping for
    retry"), and the lookup would otherwise query the real resolver.

Needs root (Sendmail's daemon, the namespaces, smtp-sink -u postfix).
"""

import os
import re
import shutil
import time

import harness
import postfix

SM_ROOT = "/opt/milterhub-test/sendmail"
SENDMAIL = os.path.join(SM_ROOT, "usr/libexec/sendmail/sendmail")
CF_DIR = os.path.join(SM_ROOT, "usr/share/sendmail/cf")
HELP_FILE = os.path.join(SM_ROOT, "etc/mail/helpfile")
UNSHARE = "/usr/bin/unshare"

# The daemon's start, inside the new UTS + mount namespaces. $1 = hostname, $2 = dir holding
# hosts/nsswitch.conf/resolv.conf; the rest is Sendmail's command line. exit 111: set-up failed.
WRAPPER = """\
#!/bin/sh
name=$1 dir=$2
shift 2
hostname "$name" || exit 111
for f in hosts nsswitch.conf resolv.conf; do
	mount --bind "$dir/$f" "/etc/$f" || exit 111
done
exec "$@"
"""


def require_sendmail():
    """Skip the test (with the reason) when the unpacked Sendmail or a tool it needs is
    missing."""
    if not os.access(SENDMAIL, os.X_OK):
        harness.skip("Sendmail not unpacked: %s missing (scripts/install-deps fetches "
                     "sendmail-bin/-cf/-base with apt-get download and unpacks them into %s; "
                     "a failed fetch, e.g. mirror unreachable, leaves it out)"
                     % (SENDMAIL, SM_ROOT))
    if not os.path.isfile(os.path.join(CF_DIR, "m4", "cf.m4")):
        harness.skip("sendmail-cf not unpacked: %s/m4/cf.m4 missing (scripts/install-deps)"
                     % CF_DIR)
    for tool in ("m4", "unshare", "mount", "hostname"):
        if not shutil.which(tool):
            harness.skip("%s not installed (needed for the private Sendmail)" % tool)
    if os.geteuid() != 0:
        harness.skip("a private Sendmail needs root (daemon, namespaces, smtp-sink -u postfix)")
    postfix.require_postfix()  # smtp-sink and its user


class Sendmail:
    # SMTP client and smtp-sink read-back: the same as the private Postfix's.
    smtp = postfix.Postfix.smtp
    send = postfix.Postfix.send
    _transaction = postfix.Postfix._transaction
    message = staticmethod(postfix.Postfix.message)
    delivered = postfix.Postfix.delivered
    _dumps = postfix.Postfix._dumps

    def __init__(self, env, milters=None, hostname="mta.example.org", mc_extra=(),
                 milter_timeouts="C:5s;S:10s;R:20s;E:60s", milter_flags="T", name="sm",
                 debug=None):
        """`milters`: a spec or a list of specs (unix:/path, local:/path, inet:PORT@HOST), in
        InputMailFilters order; each becomes INPUT_MAIL_FILTER(`mN', `S=SPEC, F=FLAGS,
        T=TIMEOUTS'). `mc_extra`: more .mc lines. `debug`: Sendmail -d flags (e.g. "64.10"
        for milter tracing), written to the daemon's stderr file."""
        require_sendmail()
        self.env = env
        self.dir = env.path(name)
        self.queue = os.path.join(self.dir, "queue")
        self.sink_dir = os.path.join(self.dir, "sink")
        self.cf = os.path.join(self.dir, "sendmail.cf")
        self.mc = os.path.join(self.dir, "sendmail.mc")
        self.traffic = os.path.join(self.dir, "traffic.log")
        self.pidfile = os.path.join(self.dir, "sendmail.pid")
        self.hostname = hostname
        if milters is None:
            milters = []
        elif isinstance(milters, str):
            milters = [milters]
        self.milters = [self._sendmail_spec(m) for m in milters]
        self.mc_extra = list(mc_extra)
        self.milter_timeouts = milter_timeouts
        self.milter_flags = milter_flags
        self.debug = debug
        self.port = None
        self.sink_port = None
        self.daemon = None
        self.sink = None
        self.startup_seconds = None

    @staticmethod
    def _sendmail_spec(spec):
        """Sendmail's socket forms: unix:/path, local:/path, inet:PORT@HOST."""
        m = re.match(r"^inet:([^:@]+):(\d+)$", spec)  # Postfix form
        if m:
            return "inet:%s@%s" % (m.group(2), m.group(1))
        return spec

    # ------------------------------------------------------------ set-up

    def _mc_text(self):
        q = lambda s: "`%s'" % s
        d = lambda k, v: "define(%s, %s)dnl" % (q(k), q(v))
        lines = [
            "divert(-1)",
            "# private Sendmail for milterhub's interop tests (tests/lib/sendmail.py)",
            "divert(0)dnl",
            "VERSIONID(`milterhub interop test instance')dnl",
            "OSTYPE(`linux')dnl",
            d("confDOMAIN_NAME", self.hostname),
            # No DNS anywhere: the switch says files, the resolver does not search.
            d("confSERVICE_SWITCH_FILE", os.path.join(self.dir, "service.switch")),
            d("confHOSTS_FILE", "/etc/hosts"),
            d("confBIND_OPTS", "-DNSRCH -DEFNAMES"),
            d("confDONT_PROBE_INTERFACES", "True"),
            d("confTO_IDENT", "0s"),
            # Load average: never queue-only or refuse connections on a busy test machine.
            d("confQUEUE_LA", "999"),
            d("confREFUSE_LA", "999"),
            d("confDELAY_LA", "0"),
            d("confMAX_DAEMON_CHILDREN", "0"),
            d("confCONNECTION_RATE_THROTTLE", "0"),
            # The milter socket is under /tmp (sticky, world writable): "unsafe" otherwise.
            d("confDONT_BLAME_SENDMAIL", "TrustStickyBit"),
            d("QUEUE_DIR", self.queue),
            d("confPID_FILE", self.pidfile),
            d("STATUS_FILE", os.path.join(self.dir, "statistics")),
            d("HELP_FILE", HELP_FILE),
            d("ALIAS_FILE", ""),
            d("confSMTP_LOGIN_MSG", "$j Sendmail private test instance"),
            d("confPRIVACY_FLAGS", "authwarnings"),
            # Relay everything to smtp-sink on loopback, no MX lookup ([address]).
            d("SMART_HOST", "[127.0.0.1]"),
            d("RELAY_MAILER_ARGS", "TCP $h %d" % self.sink_port),
            d("ESMTP_MAILER_ARGS", "TCP $h %d" % self.sink_port),
            d("SMTP_MAILER_ARGS", "TCP $h %d" % self.sink_port),
            d("confTO_CONNECT", "10s"),
            "FEATURE(`nocanonify')dnl",
            "FEATURE(`no_default_msa')dnl",
            "FEATURE(`promiscuous_relay')dnl",
            "FEATURE(`accept_unresolvable_domains')dnl",
            "FEATURE(`accept_unqualified_senders')dnl",
            "DAEMON_OPTIONS(`Port=%d, Addr=127.0.0.1, Name=MTA')dnl" % self.port,
        ]
        for i, spec in enumerate(self.milters, 1):
            lines.append("INPUT_MAIL_FILTER(`m%d', `S=%s, F=%s, T=%s')dnl"
                         % (i, spec, self.milter_flags, self.milter_timeouts))
        lines += list(self.mc_extra)
        lines.append("MAILER(`smtp')dnl")
        return "\n".join(lines) + "\n"

    def _write_config(self):
        # smtp-sink runs as postfix: it must reach TMP/sm/sink (the test's dir is 0700).
        postfix.open_for_postfix(self.env.tmp)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        os.mkdir(self.queue, 0o700)
        os.mkdir(self.sink_dir)
        pf = postfix.pwd.getpwnam("postfix")
        os.chown(self.sink_dir, pf.pw_uid, pf.pw_gid)
        os.chmod(self.sink_dir, 0o755)
        self.port = harness.free_port()
        self.sink_port = harness.free_port()
        files = {
            # 127.0.0.2: its own address, so 127.0.0.1 (the client) stays "localhost".
            "hosts": "127.0.0.1\tlocalhost\n127.0.0.2\t%s %s\n"
                     % (self.hostname, self.hostname.split(".")[0]),
            "nsswitch.conf": "hosts: files\npasswd: files\ngroup: files\nshadow: files\n",
            # Nothing listens there: a stray DNS query fails at once, and stays on the box.
            "resolv.conf": "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n",
            "service.switch": "hosts files\naliases files\n",
            "start.sh": WRAPPER,
        }
        for fn, text in files.items():
            with open(os.path.join(self.dir, fn), "w") as f:
                f.write(text)
        os.chmod(os.path.join(self.dir, "start.sh"), 0o755)
        with open(self.mc, "w") as f:
            f.write(self._mc_text())
        r = self.env.run("m4 sendmail.mc", ["m4", "-D_CF_DIR_=%s/" % CF_DIR,
                                            os.path.join(CF_DIR, "m4", "cf.m4"), self.mc],
                         timeout=30, wrap=False)
        # FEATURE(promiscuous_relay) prints its open-relay warning on stderr: not an error.
        if r.returncode != 0 or "\nO QueueDirectory=" not in r.stdout:
            raise AssertionError("m4 could not build sendmail.cf (exit %s):\n%s"
                                 % (r.returncode, r.stderr[-2000:]))
        with open(self.cf, "w") as f:
            f.write(r.stdout)

    def start(self, wait=10.0):
        """Write the configuration, start smtp-sink and `sendmail -bD`; return when Sendmail
        listens (bounded: fails with its stderr)."""
        self._write_config()
        self.sink = self.env.start(
            "smtp-sink", [postfix.SMTP_SINK, "-u", "postfix", "-d", self.sink_dir + "/%M.",
                          "-h", "sink.example.org", "127.0.0.1:%d" % self.sink_port, "16"],
            ready="inet:%d@127.0.0.1" % self.sink_port, grace=1.0, wrap=False)
        argv = [UNSHARE, "--uts", "--mount", os.path.join(self.dir, "start.sh"),
                self.hostname, self.dir, SENDMAIL, "-bD", "-C", self.cf, "-X", self.traffic]
        if self.debug:
            argv += ["-d" + self.debug]
        t0 = time.monotonic()
        self.daemon = self.env.start("sendmail", argv, grace=5.0, wrap=False)
        deadline = t0 + wait * harness.SLOW
        while not harness.spec_listening("inet:%d@127.0.0.1" % self.port):
            rc = self.daemon.popen.poll()
            if rc is not None or time.monotonic() >= deadline:
                hint = " (the namespace/bind-mount set-up failed)" if rc == 111 else ""
                raise AssertionError(
                    "private Sendmail did not listen on 127.0.0.1:%d within %.0fs (%s%s); "
                    "stderr:\n%s" % (self.port, wait * harness.SLOW,
                                     "exited %s" % rc if rc is not None else "running", hint,
                                     self.daemon.stderr()[-2000:]))
            time.sleep(0.01)
        self.startup_seconds = time.monotonic() - t0
        self.env.note("private Sendmail: %s (cf %s, SMTP traffic %s, started in %.2fs)"
                      % (self.dir, self.cf, self.traffic, self.startup_seconds))
        return self

    # ------------------------------------------------------- diagnosis

    def log(self):
        """Sendmail's SMTP traffic log (-X) and its stderr (warnings, -d output)."""
        out = []
        for p in sorted(os.listdir(self.dir)):
            if p.startswith("traffic.log"):
                try:
                    with open(os.path.join(self.dir, p), "rb") as f:
                        out.append(f.read().decode("utf-8", "replace"))
                except OSError:
                    pass
        if self.daemon is not None:
            out.append(self.daemon.stderr())
        return "\n".join(out)

    def log_tail(self, n=25):
        lines = self.log().splitlines()
        return "\n".join("  " + ln for ln in lines[-n:]) or "  (no Sendmail output)"

    # ------------------------------------------------------------ stop

    def stop(self, wait=5.0):
        """SIGTERM to the daemon (it passes it on to its children), then SIGKILL to its
        process group; stop smtp-sink. Fails when a Sendmail process of this instance is left."""
        postfix.stop_instance("Sendmail", self.daemon, self._instance_pids, wait)
        if self.sink is not None:
            self.sink.stop()

    def _instance_pids(self):
        """Live processes with this instance's sendmail.cf on the command line, or in the
        daemon's process group (delivery children double-fork out of it)."""
        return postfix.live_pids(self.cf, self.daemon.pid if self.daemon else None)
