"""
hub_conditions - applicable conditions through the hub (design §2.7, issue 4):
a child's `when` list decides, stage by stage, whether it takes part.

Scope of "not applicable" (design §2.7): at connect/helo the child is out
for the connection; at mail/data/content stages for the transaction (ABORT
if it had MAIL, offered the next MAIL again); at rcpt for that recipient
only. A child that is not applicable is never folded into a merge; when no
child applies the manager's fallback answers.

Covered: Rgrey end to end (greylist child + S25R, whitelist rescue,
blacklist, IPv6, address literals), each built-in condition at the stage it
decides (remote-network, authenticated/unauthenticated, trusted-sender,
restrict-accounts, stress/no-stress, schedule with MILTERHUB_NOW), custom
Lua conditions (set_macro, an error, false at MAIL for one message only, a
DATA/header-stage removal that must not stop the other children), the
manager fallback when no child applies, bad configurations (--check-config
exit 1 naming FILE:LINE and the key; a running hub keeps its old
configuration on SIGHUP), and the examples/ files run end to end.

Whether a child applied is read from its --log: a child that is out for the
connection logs no MAIL (it may or may not have seen CONNECT: the contract
only says it is left out "from that point").
"""

import os
import re
import signal
import time

from common import eq, ok, test, on, register, SLOW
from hub_envelope import spec_of, hub_mta, message_slices

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLES = os.path.join(REPO, "examples")

DYNAMIC = "p1234-ipad56.example.ne.jp"   # S25R rule 1 (and it is the classic shape)
DYNAMIC_ADDR = "192.0.2.10"
CLEAN = "mail.example.com"
CLEAN_ADDR = "192.0.2.20"
A, B = "<a@example.org>", "<b@example.org>"
FIRST, SECOND = "<first@example.net>", "<second@example.net>"


# ------------------------------------------------------------------ helpers

class Lua:
    """Lua source inserted as is (functions)."""

    def __init__(self, src):
        self.src = src


LUA_KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
                "true", "until", "while"}


def lua_key(k):
    """A table key: `name` when it can be, else `["name"]` (e.g. `local`,
    remote-network's option, is a Lua keyword)."""
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and k not in LUA_KEYWORDS:
        return k
    return "[%s]" % lua(k)


def lua(value):
    """A Python value as Lua source: dicts become tables with keys, lists
    and tuples array tables, Lua(...) raw source."""
    if isinstance(value, Lua):
        return value.src
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join("%s = %s" % (lua_key(k), lua(v)) for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(lua(v) for v in value) + " }"
    s = str(value)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config(children, conditions=(), manager=None, listen=None):
    """milterhub.lua text. children: list of (name, TestMilter|spec, {opts});
    conditions: list of (name, {opts}) rendered as `condition "name" {...}`."""
    text = "manager %s\n" % lua(dict({"listen": listen}, **(manager or {})))
    for name, opts in conditions:
        text += 'condition "%s" %s\n' % (name, lua(opts))
    for name, child, opts in children:
        text += 'milter "%s" %s\n' % (name, lua(dict({"socket": spec_of(child)}, **opts)))
    return text


def cond_hub(env, children, conditions=(), manager=None, hub_env=None):
    listen = env.unix_spec()
    text = config(children, conditions, manager, listen)
    env.note("milterhub.lua:\n" + text + ("env: %r" % hub_env if hub_env else ""))
    return env.hub(text, listen=listen, env=hub_env)


def mails(tm):
    """The MAIL lines a child logged."""
    return tm.all("mail")


def mail_count(tm):
    return len(mails(tm))


def session(env, hub, name, addr, *args):
    return hub_mta(env, hub, "--client-name", name, "--client-addr", addr, *args)


def applied_in(env, hub, tm, *mta_args):
    """Run one session; True when the child got its MAIL (it applied)."""
    before = mail_count(tm)
    r = hub_mta(env, hub, *mta_args)
    eq(r["error"], None, "simulator error")
    return mail_count(tm) > before, r


def hub_log_line(proc, pattern, wait=5.0):
    deadline = time.monotonic() + wait * SLOW
    while True:
        for line in proc.stderr().splitlines():
            if re.search(pattern, line):
                return line
        if time.monotonic() >= deadline:
            raise AssertionError("no stderr line of %s matches %r; stderr:\n%s"
                                 % (proc.label, pattern, proc.stderr()[-2000:]))
        time.sleep(0.02)


def check_config(env, name, text):
    path = env.path(name)
    with open(path, "w") as f:
        f.write(text)
    r = env.run("milterhub", [env.hub_bin, "--check-config", path], timeout=30)
    return path, r


def example_with_sockets(env, filename, sockets, listen):
    """The text of examples/FILENAME with the manager's listen and each
    milter block's socket replaced: sockets maps milter name -> TestMilter.
    Every milter block of the file must be given one."""
    with open(os.path.join(EXAMPLES, filename)) as f:
        text = f.read()
    text, n = re.subn(r'(\blisten\s*=\s*)"[^"]*"', lambda m: m.group(1) + lua(listen), text, count=1)
    eq(n, 1, "listen keys replaced in " + filename)
    names = re.findall(r'^\s*milter\s+"([^"]+)"', text, re.M)
    eq(sorted(names), sorted(sockets), "milter blocks of " + filename)
    for name, child in sockets.items():
        pat = r'(milter\s+"%s"\s*\{[^}]*?\bsocket\s*=\s*)"[^"]*"' % re.escape(name)
        text, n = re.subn(pat, lambda m: m.group(1) + lua(spec_of(child)), text, count=1)
        eq(n, 1, "socket of milter %r replaced in %s" % (name, filename))
    env.note("%s as run:\n%s" % (filename, text))
    return text


def epoch(text):
    """'2026-11-30 09:00:00' (UTC) as epoch seconds."""
    import calendar
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


# ------------------------------------------------------------------ Rgrey end to end

def rgrey(env, s25r_options=None):
    """A greylist child (tempfail at MAIL) applied with s25r, then a
    pass-through child. Returns (hub, greylist, passthrough)."""
    grey = env.testmilter(*on("mail", "tempfail"), label="greylist")
    other = env.testmilter(label="passthrough")
    conds = [("s25r", s25r_options)] if s25r_options is not None else []
    hub = cond_hub(env, [("greylist", grey, {"when": ["s25r"]}),
                         ("passthrough", other, {})], conds)
    return hub, grey, other


@test
def cond_rgrey_s25r_client_is_greylisted_with_4xx_at_mail(env):
    hub, grey, other = rgrey(env)
    r = session(env, hub, DYNAMIC, DYNAMIC_ADDR)
    eq(r["stages"][0]["reply"], "continue", "connect reply")
    st = [s for s in r["stages"] if s["stage"] == "mail"]
    eq([s["reply"] for s in st], ["tempfail"], "MAIL reply the MTA got")
    eq(r["result"], "tempfail", "result")
    eq(mail_count(grey), 1, "MAILs the greylist child got")
    ok("eom" not in grey.cmds(), "greylist child got EOM of a tempfailed message")
    # design §2.2: merged tempfail at MAIL -> ABORT to the others in the transaction.
    cmds = other.cmds()
    ok("mail" in cmds and "abort" in cmds[cmds.index("mail"):],
       "pass-through child not aborted after the tempfail: %r" % cmds)


@test
def cond_rgrey_clean_client_is_accepted_and_the_greylist_child_never_sees_its_mail(env):
    hub, grey, other = rgrey(env)
    r = session(env, hub, CLEAN, CLEAN_ADDR)
    eq(r["result"], "accept", "result for %s" % CLEAN)
    eq([s["reply"] for s in r["stages"] if s["stage"] == "mail"], ["continue"], "MAIL reply")
    eq(mails(grey), [], "MAILs the greylist child got")
    ok("eom" in other.cmds(), "pass-through child missed the message: %r" % other.cmds())


@test
def cond_rgrey_whitelisted_s25r_client_is_rescued(env):
    hub, grey, other = rgrey(env, {"whitelist": ["example.ne.jp"]})
    r = session(env, hub, DYNAMIC, DYNAMIC_ADDR)
    eq(r["result"], "accept", "result for a whitelisted %s" % DYNAMIC)
    eq(mails(grey), [], "MAILs the greylist child got")
    # A name outside the whitelist is still greylisted (the whitelist is not "everything").
    r = session(env, hub, "p1234-ipad56.example.co.uk", DYNAMIC_ADDR)
    eq(r["result"], "tempfail", "result for a dynamic name outside the whitelist")


@test
def cond_rgrey_ipv6_client_is_not_greylisted_by_default(env):
    hub, grey, other = rgrey(env)
    r = session(env, hub, DYNAMIC, "2001:db8::10")
    eq(r["result"], "accept", "result for an IPv6 client with an S25R-looking name")
    eq(mails(grey), [], "MAILs the greylist child got")
    # ipv4_only = false: the same client is judged by its name.
    hub2, grey2, _ = rgrey(env, {"ipv4_only": False})
    r = session(env, hub2, DYNAMIC, "2001:db8::10")
    eq(r["result"], "tempfail", "result with ipv4_only = false")


@test
def cond_rgrey_client_without_reverse_name_is_greylisted(env):
    # Postfix sends "[ADDR]" as the connect host name when reverse DNS failed;
    # the S25R rules treat "unknown" and an address literal as dynamic.
    hub, grey, _ = rgrey(env)
    r = session(env, hub, "[192.0.2.30]", "192.0.2.30")
    eq(r["result"], "tempfail", "result for a client without a reverse name")


@test
def cond_rgrey_blacklist_catches_a_clean_name_and_the_whitelist_beats_it(env):
    hub, grey, _ = rgrey(env, {"blacklist": [CLEAN]})
    eq(session(env, hub, CLEAN, CLEAN_ADDR)["result"], "tempfail", "blacklisted clean name")
    hub2, grey2, _ = rgrey(env, {"blacklist": [CLEAN], "whitelist": [CLEAN]})
    eq(session(env, hub2, CLEAN, CLEAN_ADDR)["result"], "accept",
       "name on both lists (the whitelist wins)")
    eq(mails(grey2), [], "MAILs the greylist child got with the whitelist winning")


@test
def cond_rgrey_default_whitelist_covers_big_senders_unless_switched_off(env):
    big = "mail-yw1-f12345.google.com"  # rule 2 (five digits) - and Google's real shape
    hub, grey, _ = rgrey(env)
    eq(session(env, hub, big, "192.0.2.40")["result"], "accept", "google.com host")
    hub2, grey2, _ = rgrey(env, {"default_whitelist": False})
    eq(session(env, hub2, big, "192.0.2.40")["result"], "tempfail",
       "google.com host with default_whitelist = false")


@test
def cond_examples_rgrey_lua_runs_end_to_end(env):
    grey = env.testmilter(*on("mail", "tempfail"), label="greylist")
    dkim = env.testmilter(label="opendkim")
    listen = env.unix_spec()
    text = example_with_sockets(env, "rgrey.lua", {"greylist": grey, "opendkim": dkim}, listen)
    hub = env.hub(text, listen=listen)
    eq(session(env, hub, DYNAMIC, DYNAMIC_ADDR)["result"], "tempfail", "dynamic client")
    eq(session(env, hub, CLEAN, CLEAN_ADDR)["result"], "accept", "clean client")
    eq(session(env, hub, DYNAMIC, DYNAMIC_ADDR, "--auth", "alice")["result"], "accept",
       "dynamic client that authenticated")
    eq(mail_count(grey), 1, "MAILs the greylist child got (only the first session)")
    eq(len(dkim.all("eom")), 2, "messages the DKIM child got to the end")


# ------------------------------------------------------------------ remote-network (connect)

@test
def cond_remote_network_applies_only_to_remote_clients(env):
    tm = env.testmilter()
    hub = cond_hub(env, [("remote", tm, {"when": ["remote-network"]})])
    for name, addr, want in [("localhost", "127.0.0.1", False),
                             ("mx.example.net", "192.0.2.10", True),
                             ("lan.example.net", "10.1.2.3", False),
                             ("lan.example.net", "192.168.1.5", False),
                             ("localhost", "::1", False),
                             ("mx6.example.net", "2001:db8::25", True)]:
        got, r = applied_in(env, hub, tm, "--client-name", name, "--client-addr", addr)
        eq(got, want, "child applied for a client at %s" % addr)
        eq(r["result"], "accept", "result for %s" % addr)


@test
def cond_remote_network_local_and_remote_lists_override_the_defaults(env):
    tm = env.testmilter()
    hub = cond_hub(env, [("remote", tm, {"when": ["remote-network"]})],
                   [("remote-network", {"local": ["192.0.2.0/24", "2001:db8:1::/48"],
                                        "remote": ["10.9.0.0/16"]})])
    for addr, want in [("192.0.2.10", False), ("198.51.100.7", True),
                       ("2001:db8:1::5", False), ("2001:db8:2::5", True),
                       ("10.9.8.7", True), ("10.1.2.3", False), ("127.0.0.1", False)]:
        got, _ = applied_in(env, hub, tm, "--client-name", "h.example.net", "--client-addr", addr)
        eq(got, want, "child applied for %s with local/remote lists" % addr)


@test
def cond_not_applicable_at_connect_leaves_the_child_out_for_the_connection(env):
    tm = env.testmilter()
    other = env.testmilter()
    hub = cond_hub(env, [("remote", tm, {"when": ["remote-network"]}), ("all", other, {})])
    r = session(env, hub, "localhost", "127.0.0.1", "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    ok(not any(c in ("mail", "rcpt", "data", "header", "eom") for c in tm.cmds()),
       "the child out at connect still got message events: %r" % tm.cmds())
    eq(len(other.all("eom")), 2, "messages the other child got")


@test
def cond_no_applicable_child_means_the_manager_fallback(env):
    tm = env.testmilter()
    hub = cond_hub(env, [("remote", tm, {"when": ["remote-network"]})],
                   manager={"fallback": "tempfail"})
    r = session(env, hub, "localhost", "127.0.0.1")
    eq(r["stages"][0]["stage"], "connect", "first stage")
    eq(r["stages"][0]["reply"], "tempfail", "connect reply when no child applies")
    eq(mails(tm), [], "MAILs of the child that is not applicable")
    # The same hub with a remote client: the child applies, the fallback is not used.
    eq(session(env, hub, "mx.example.net", "192.0.2.10")["result"], "accept",
       "result when the child applies")


def make_no_child_left_at(stage_name):
    """The only child's condition says "not applicable" at stage_name: no
    child applies to the transaction any more, so the MTA gets the manager's
    fallback (design §2.5, §2.7) - at whatever stage that happens."""
    def t(env):
        tm = env.testmilter()
        hub = cond_hub(env, [("only", tm, {"when": ["never"]})],
                       [("never", {stage_name: Lua("function(s) return false end")})],
                       manager={"fallback": "tempfail"})
        r = hub_mta(env, hub)
        eq(r["result"], "tempfail",
           "result when the only child leaves at %s (manager fallback tempfail); stages %r"
           % (stage_name, [(s["stage"], s["reply"]) for s in r["stages"]]))
        ok("eom" not in tm.cmds(), "the child left at %s got EOM: %r" % (stage_name, tm.cmds()))
    register("cond_no_applicable_child_left_at_%s_means_the_manager_fallback" % stage_name, t)


for _s in ("mail", "data", "header", "eoh", "eom"):
    make_no_child_left_at(_s)


# ------------------------------------------------------------------ authenticated (mail)


@test
def cond_authenticated_works_when_every_child_asked_for_a_mail_list_without_auth_macros(env):
    # design §2.4: the hub asks the MTA for the macros its conditions read,
    # even when the children's own MAIL lists leave them out.
    scanner = env.testmilter("--negotiate", "macros=mail:{mail_addr}", label="scanner")
    signer = env.testmilter("--negotiate", "macros=mail:{mail_addr}", label="signer")
    hub = cond_hub(env, [("scanner", scanner, {"when": ["unauthenticated"]}),
                         ("signer", signer, {})])
    r = hub_mta(env, hub, "--auth", "alice")
    eq(r["result"], "accept", "result with --auth")
    mail_list = r["negotiated"]["macros"].get("mail", "")
    ok("{auth_authen}" in mail_list and "{auth_type}" in mail_list,
       "MAIL macros asked of the MTA: %r" % mail_list)
    eq((mail_count(scanner), mail_count(signer)), (0, 1),
       "MAILs (scanner, signer) for an authenticated sender")

@test
def cond_authenticated_and_unauthenticated_decide_at_mail(env):
    authd = env.testmilter(label="authenticated")
    unauth = env.testmilter(label="unauthenticated")
    hub = cond_hub(env, [("a", authd, {"when": ["authenticated"]}),
                         ("u", unauth, {"when": ["unauthenticated"]})])
    r = hub_mta(env, hub, "--auth", "alice")
    eq(r["result"], "accept", "result with --auth")
    eq((mail_count(authd), mail_count(unauth)), (1, 0), "MAILs (authenticated, unauthenticated) with --auth")
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result without --auth")
    eq((mail_count(authd), mail_count(unauth)), (1, 1), "MAILs after a session without --auth")


@test
def cond_content_scanner_is_skipped_for_authenticated_submitters_examples_submission_lua(env):
    clamav = env.testmilter(*on("eom", "reply:554:5.7.1:virus found"), label="clamav")
    spam = env.testmilter(*on("eom", "add-header:X-Spam-Checked:yes"), label="spamassassin")
    dkim = env.testmilter(*on("eom", "add-header:DKIM-Signature:v=1"), label="opendkim")
    listen = env.unix_spec()
    text = example_with_sockets(env, "submission.lua",
                                {"clamav": clamav, "spamassassin": spam, "opendkim": dkim}, listen)
    hub = env.hub(text, listen=listen)
    # An authenticated submitter: no scanner sees the message, the signer does.
    r = hub_mta(env, hub, "--auth", "alice")
    eq(r["result"], "accept", "result for an authenticated submitter")
    eq([m["op"] + ":" + m.get("name", "") for m in r["modifications"]],
       ["add-header:DKIM-Signature"], "modifications for an authenticated submitter")
    eq((mail_count(clamav), mail_count(spam), mail_count(dkim)), (0, 0, 1),
       "MAILs (clamav, spamassassin, opendkim) for an authenticated submitter")
    # Mail from outside: the scanner sees it (and rejects it here).
    r = hub_mta(env, hub)
    eq(r["result"], "reject", "result for mail from outside")
    eq(r["reply"], "554 5.7.1 virus found", "reply for mail from outside")
    eq(len(clamav.all("eom")), 1, "messages the virus scanner got to the end")


# ------------------------------------------------------------------ trusted-sender (mail)

@test
def cond_trusted_sender_sends_trusted_domain_yes_with_mail(env):
    tm = env.testmilter()
    other = env.testmilter()
    hub = cond_hub(env, [("trusted", tm, {"when": ["trusted-sender"]}), ("other", other, {})],
                   [("trusted-sender", {"domains": ["example.net"]})])
    r = hub_mta(env, hub, "--from", "<alice@example.net>")
    eq(r["result"], "accept", "result")
    got = mails(tm)
    eq(len(got), 1, "MAILs of the child")
    eq(got[0].get("macros", {}).get("{trusted_domain}"), "yes",
       "{trusted_domain} in the child's MAIL macros (%r)" % got[0].get("macros"))
    ok("{trusted_domain}" not in other.first("mail").get("macros", {}),
       "a child without the condition got {trusted_domain}: %r" % other.first("mail"))
    # An untrusted sender: the macro is not set.
    hub_mta(env, hub, "--from", "<mallory@example.com>")
    for e in mails(tm)[1:]:
        ok("{trusted_domain}" not in e.get("macros", {}),
           "{trusted_domain} sent for an untrusted sender: %r" % e)


@test
def cond_trusted_sender_is_judged_per_message_and_its_macro_does_not_leak(env):
    tm = env.testmilter()
    hub = cond_hub(env, [("trusted", tm, {"when": ["trusted-sender"]})],
                   [("trusted-sender", {"domains": ["example.net"]})])
    r = hub_mta(env, hub, "--messages", "3", "--from", "<a@example.net>",
                "--from", "<m@example.com>", "--from", "<b@example.net>")
    eq([m["result"] for m in r["messages"]], ["accept"] * 3, "message results")
    # Message 2's sender is not trusted: the child is out of that transaction only.
    eq([e["args"][0] for e in mails(tm)], ["<a@example.net>", "<b@example.net>"],
       "MAILs the child got")
    for e in tm.log():
        if e.get("cmd") in ("mail", "rcpt", "data", "eoh", "eom"):
            eq(e.get("macros", {}).get("{trusted_domain}"), "yes",
               "{trusted_domain} with the child's %s (%r)" % (e["cmd"], e.get("macros")))


@test
def cond_trusted_sender_macro_name_and_value_and_domains_file(env):
    path = env.path("trusted.txt")
    with open(path, "w") as f:
        f.write("# trusted partners\nexample.com\n\npartner.example\n")
    tm = env.testmilter()
    hub = cond_hub(env, [("trusted", tm, {"when": ["partners"]})],
                   [("partners", {"type": "trusted-sender", "domains_file": path,
                                  "macro": "{partner}", "macro_value": "1"})])
    hub_mta(env, hub, "--from", "<bob@partner.example>")
    got = mails(tm)
    eq(len(got), 1, "MAILs of the child")
    eq(got[0].get("macros", {}).get("{partner}"), "1",
       "{partner} in the child's MAIL macros (%r)" % got[0].get("macros"))


# ------------------------------------------------------------------ restrict-accounts (rcpt)

@test
def cond_restrict_accounts_sends_only_the_listed_recipient_and_the_message_goes_through(env):
    tm = env.testmilter()
    other = env.testmilter()
    hub = cond_hub(env, [("restricted", tm, {"when": ["restrict-accounts"]}), ("other", other, {})],
                   [("restrict-accounts", {"accounts": ["a@example.org"]})])
    r = hub_mta(env, hub, "--rcpt", B, "--rcpt", A)
    eq(r["result"], "accept", "result")
    eq(r["recipients"], [B, A], "recipients the MTA kept")
    eq([e["args"][0] for e in tm.all("rcpt")], [A], "RCPTs the restricted child saw")
    eq([e["args"][0] for e in other.all("rcpt")], [B, A], "RCPTs the other child saw")
    ok("eom" in tm.cmds(), "the restricted child is in the message for %s: %r" % (A, tm.cmds()))


@test
def cond_recipient_not_applicable_is_not_folded_into_the_merge(env):
    # The restricted child rejects every recipient it sees: only A is refused.
    tm = env.testmilter(*on("rcpt", "reject"))
    other = env.testmilter()
    hub = cond_hub(env, [("restricted", tm, {"when": ["restrict-accounts"]}), ("other", other, {})],
                   [("restrict-accounts", {"accounts": ["a@example.org"]})])
    r = hub_mta(env, hub, "--rcpt", A, "--rcpt", B)
    eq([(x["rcpt"], x["reply"]) for x in r["rcpts"]], [(A, "reject"), (B, "continue")],
       "recipient replies")
    eq(r["result"], "accept", "result")
    eq(r["recipients"], [B], "recipients kept")
    ok("eom" in other.cmds(), "the other child missed the message: %r" % other.cmds())


# ------------------------------------------------------------------ stress / no-stress (connect)

@test
def cond_stress_and_no_stress_follow_the_threshold(env):
    tms = [env.testmilter(label=n) for n in ("busy1", "busy1000", "calm1", "calm1000")]
    hub = cond_hub(env, [("c1", tms[0], {"when": ["busy1"]}),
                         ("c2", tms[1], {"when": ["busy1000"]}),
                         ("c3", tms[2], {"when": ["calm1"]}),
                         ("c4", tms[3], {"when": ["calm1000"]})],
                   [("busy1", {"type": "stress", "threshold": 1}),
                    ("busy1000", {"type": "stress", "threshold": 1000}),
                    ("calm1", {"type": "no-stress", "threshold": 1}),
                    ("calm1000", {"type": "no-stress", "threshold": 1000})])
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    # One session in progress: 1 >= 1 is stress, 1 < 1000 is not.
    eq([mail_count(t) for t in tms], [1, 0, 0, 1],
       "MAILs of (stress 1, stress 1000, no-stress 1, no-stress 1000)")


# ------------------------------------------------------------------ schedule (connect, clock)

MONDAY_0859 = epoch("2026-11-30 08:59:59")  # a Monday
MONDAY_0900 = epoch("2026-11-30 09:00:00")


def schedule_applies(env, now, options):
    tm = env.testmilter()
    opts = dict({"type": "schedule"}, **options)
    hub = cond_hub(env, [("timed", tm, {"when": ["timed"]})], [("timed", opts)],
                   hub_env={"MILTERHUB_NOW": str(now), "TZ": "UTC"})
    got, r = applied_in(env, hub, tm)
    eq(r["result"], "accept", "result")
    return got


@test
def cond_schedule_office_hours_start_at_nine_on_a_weekday(env):
    office = {"days": "mon-fri", "hours": "09:00-18:00", "timezone": "UTC"}
    eq(schedule_applies(env, MONDAY_0859, office), False, "applied at Monday 08:59:59")
    eq(schedule_applies(env, MONDAY_0900, office), True, "applied at Monday 09:00:00")
    eq(schedule_applies(env, epoch("2026-11-30 17:59:59"), office), True, "applied at 17:59:59")
    eq(schedule_applies(env, epoch("2026-11-28 10:00:00"), office), False,
       "applied at Saturday 10:00")


@test
def cond_schedule_night_hours_wrap_past_midnight(env):
    night = {"hours": "22-6", "timezone": "UTC"}
    eq(schedule_applies(env, epoch("2026-11-30 21:59:59"), night), False, "applied at 21:59:59")
    eq(schedule_applies(env, epoch("2026-11-30 22:00:00"), night), True, "applied at 22:00:00")
    eq(schedule_applies(env, epoch("2026-12-01 05:59:59"), night), True, "applied at 05:59:59")
    eq(schedule_applies(env, epoch("2026-12-01 12:00:00"), night), False, "applied at noon")


@test
def cond_schedule_uses_the_given_time_zone(env):
    # 00:00 UTC on Monday is 09:00 in Tokyo (UTC+9, no DST).
    office = {"days": "mon-fri", "hours": "09:00-18:00", "timezone": "Asia/Tokyo"}
    eq(schedule_applies(env, epoch("2026-11-30 00:00:00"), office), True,
       "applied at 09:00 Tokyo time")
    eq(schedule_applies(env, epoch("2026-11-29 23:59:59"), office), False,
       "applied at 08:59:59 Tokyo time")


@test
def cond_examples_day_night_lua_greylists_everyone_only_at_night(env):
    grey = env.testmilter(*on("mail", "tempfail"), label="greylist")
    clamav = env.testmilter(label="clamav")

    def result_at(when, name, addr):
        listen = env.unix_spec()
        text = example_with_sockets(env, "day-night.lua", {"greylist-day": grey,
                                                            "greylist-night": grey,
                                                            "clamav": clamav}, listen)
        hub = env.hub(text, listen=listen, env={"MILTERHUB_NOW": str(epoch(when))})
        return session(env, hub, name, addr)["result"]
    # Berlin is UTC+1 in November.
    eq(result_at("2026-11-30 09:00:00", CLEAN, CLEAN_ADDR), "accept", "clean client by day")
    eq(result_at("2026-11-30 09:00:00", DYNAMIC, DYNAMIC_ADDR), "tempfail", "dynamic client by day")
    eq(result_at("2026-11-30 22:30:00", CLEAN, CLEAN_ADDR), "tempfail", "clean client at night")


# ------------------------------------------------------------------ custom Lua conditions

@test
def cond_lua_condition_sets_a_macro_the_child_receives(env):
    tm = env.testmilter()
    other = env.testmilter()
    hub = cond_hub(env, [("tagged", tm, {"when": ["tagger"]}), ("other", other, {})],
                   [("tagger", {"mail": Lua('function(s) s:set_macro("{x}", "1") return true end')})])
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    m = tm.first("mail").get("macros", {})
    eq(m.get("{x}"), "1", "{x} in the child's MAIL macros (%r)" % m)
    ok("{x}" not in other.first("mail").get("macros", {}),
       "a child without the condition got {x}: %r" % other.first("mail"))


@test
def cond_lua_condition_error_is_logged_with_its_name_and_the_child_still_applies(env):
    tm = env.testmilter(*on("mail", "reject"))
    hub = cond_hub(env, [("strict", tm, {"when": ["broken-check"]})],
                   [("broken-check", {"connect": Lua('function(s) error("boom") end')})])
    r = hub_mta(env, hub)
    eq(r["result"], "reject", "result (the child applied and rejected)")
    eq(mail_count(tm), 1, "MAILs of the child")
    # The log line names the condition and says what went wrong (not just a start-up line).
    hub_log_line(hub, r"broken-check.*(error|boom)|(error|boom).*broken-check")
    ok(hub.popen.poll() is None, "the hub is still running")
    # And again: the error does not poison the next session.
    eq(hub_mta(env, hub)["result"], "reject", "result of a second session")


@test
def cond_lua_condition_false_at_mail_leaves_the_child_out_of_that_message_only(env):
    tm = env.testmilter()
    other = env.testmilter()
    hub = cond_hub(env, [("picky", tm, {"when": ["not-first"]}), ("other", other, {})],
                   [("not-first", {"mail": Lua('function(s) return s.sender ~= "%s" end' % FIRST)})])
    r = hub_mta(env, hub, "--messages", "2", "--from", FIRST, "--from", SECOND)
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    eq([e["args"][0] for e in mails(tm)], [SECOND], "MAILs the child got")
    slices = message_slices(tm)
    ok(slices and "eom" in slices[-1], "the child did not get message 2 to the end: %r" % slices)
    eq(len(other.all("eom")), 2, "messages the other child got")


@test
def cond_lua_condition_false_at_helo_leaves_the_child_out_for_the_connection(env):
    tm = env.testmilter()
    other = env.testmilter()
    hub = cond_hub(env, [("picky", tm, {"when": ["good-helo"]}), ("other", other, {})],
                   [("good-helo", {"helo": Lua('function(s) return s.helo ~= "bad.example" end')})])
    r = hub_mta(env, hub, "--helo", "bad.example", "--messages", "2")
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    eq(mails(tm), [], "MAILs of the child out at HELO")
    cmds = tm.cmds()
    if "connect" in cmds:
        # design §2.7 / issue 4: out for the connection - the hub says QUIT.
        ok("quit" in cmds, "the child out at HELO got no QUIT: %r" % cmds)
    eq(len(other.all("eom")), 2, "messages the other child got")
    # Another HELO on a new connection: the child applies again.
    hub_mta(env, hub, "--helo", "good.example")
    eq(len(mails(tm)), 1, "MAILs of the child on a connection with a good HELO")


@test
def cond_lua_condition_reads_the_headers_so_far_and_an_earlier_childs_result(env):
    # a is first in the chain: it gets the message live and answers its eom
    # (accept) before b is replayed, so at b's eoh s:result("a") is known.
    # The condition reports what it saw in macros b receives with its eoh.
    a = env.testmilter(*on("eom", "accept"))
    b = env.testmilter()
    see = Lua('''function(s)
        local names = {}
        for i, h in ipairs(s.headers) do
            if h.name == "X-Spam" then return false end
            names[i] = h.name .. "=" .. h.value
        end
        s:set_macro("{hdrs}", table.concat(names, ","))
        s:set_macro("{res_a}", tostring(s:result("a")))
        s:set_macro("{res_all}", tostring(s.results.a) .. "/" .. tostring(s.results.nobody))
        return true
    end''')
    hub = cond_hub(env, [("a", a, {}), ("b", b, {"when": ["no-spam"]})],
                   [("no-spam", {"eoh": see})])
    hdrs = ["--header", "From: s@example.net", "--header", "Subject: hello"]
    r = hub_mta(env, hub, *hdrs)
    eq(r["result"], "accept", "result of the clean message")
    eoh = b.all("eoh")
    eq(len(eoh), 1, "eoh commands b got for the clean message")
    m = eoh[0].get("macros", {})
    # The working copy's headers as a saw them: the MTA's hidden Received: left out.
    seen = ",".join("%s=%s" % (h["name"], h["value"]) for h in a.all("header"))
    eq(m.get("{hdrs}"), seen, "s.headers at b's eoh (b's eoh macros %r)" % m)
    ok("From=s@example.net" in seen and "Subject=hello" in seen, "a's headers: %r" % seen)
    eq(m.get("{res_a}"), "accept", "s:result(\"a\") at b's eoh")
    eq(m.get("{res_all}"), "accept/nil", "s.results at b's eoh")
    eq(len(b.all("eom")), 1, "b applied to the clean message")
    # X-Spam: the condition says false at eoh; b is out of that message only.
    r = hub_mta(env, hub, *(hdrs + ["--header", "X-Spam: yes"]))
    eq(r["result"], "accept", "result of the spam-marked message")
    eq(len(b.all("eoh")), 1, "b got an eoh for the X-Spam message")
    eq(len(b.all("eom")), 1, "b got the X-Spam message to the end")
    eq(len(a.all("eom")), 2, "messages a got")


def removal_at(env, stage_name):
    """Three children; the middle one's condition is false at DATA (or at a
    header) of message 1 only. Message 1 must still reach the others and
    the MTA; the middle child gets ABORT and is back for message 2."""
    first, middle, last = (env.testmilter(label="child%d" % i) for i in (1, 2, 3))
    fn = 'function(s) return s.sender ~= "%s" end' % FIRST
    hub = cond_hub(env, [("child1", first, {}), ("child2", middle, {"when": ["late"]}),
                         ("child3", last, {})],
                   [("late", {stage_name: Lua(fn)})])
    r = hub_mta(env, hub, "--messages", "2", "--from", FIRST, "--from", SECOND)
    eq([m["result"] for m in r["messages"]], ["accept", "accept"], "message results")
    for i, tm in (1, first), (3, last):
        eq(len(tm.all("eom")), 2, "messages child %d got to the end" % i)
        eq(tm.all("eom")[0]["headers"], 4, "headers child %d got in message 1" % i)
    slices = message_slices(middle)
    eq(len(slices), 2, "MAILs the middle child got: %r" % slices)
    ok("eom" not in slices[0] and "abort" in slices[0],
       "middle child in message 1 (out at %s): %r" % (stage_name, slices[0]))
    ok("eom" in slices[1], "middle child in message 2: %r" % slices[1])


@test
def cond_data_stage_condition_removing_one_child_does_not_stop_the_others(env):
    removal_at(env, "data")


@test
def cond_header_stage_condition_removing_one_child_does_not_stop_the_others(env):
    removal_at(env, "header")


# ------------------------------------------------------------------ bad configuration

BAD = [
    # (name, text, line, strings the message must hold)
    ("unknown_condition_name",
     '\nmilter "grey" { socket = "unix:/g", when = { "s25rr" } }\n', 2,
     ['milter "grey"', "when", "s25rr"]),
    ("unknown_condition_type",
     '\n\ncondition "x" { type = "s26r" }\n', 3, ['condition "x"', "type", "s26r"]),
    ("bad_cidr",
     '\n\n\ncondition "remote-network" { ["local"] = { "10.0.0.0/33" } }\n', 4,
     ['condition "remote-network"', "local", "10.0.0.0/33"]),
    ("bad_cidr_address",
     'condition "remote-network" { remote = { "300.1.2.0/24" } }\n', 1,
     ["remote", "300.1.2.0/24"]),
    ("bad_regex_in_whitelist",
     '\ncondition "s25r" { whitelist = { "/^mail(/" } }\n', 2,
     ['condition "s25r"', "whitelist", "^mail("]),
    ("unknown_condition_key",
     '\ncondition "s25r" { whitlist = { "example.com" } }\n', 2,
     ['condition "s25r"', "unknown key 'whitlist'"]),
    ("wrong_type_threshold",
     'condition "stress" { threshold = "many" }\n', 1, ['condition "stress"', "threshold"]),
    ("bad_hours",
     'condition "schedule" { hours = "25:00-26:00" }\n', 1, ["hours", "25:00"]),
    ("bad_days",
     'condition "schedule" { days = "mon-funday" }\n', 1, ["days", "funday"]),
    ("when_not_a_list",
     'milter "grey" { socket = "unix:/g", when = 5 }\n', 1, ['milter "grey"', "when"]),
    ("missing_accounts_file",
     'condition "restrict-accounts" { accounts_file = "/nonexistent/accounts" }\n', 1,
     ["accounts_file", "/nonexistent/accounts"]),
    ("custom_condition_without_a_function",
     '\ncondition "mine" { }\n', 2, ['condition "mine"']),
    ("duplicate_condition",
     'condition "s25r" { }\ncondition "s25r" { }\n', 2, ['condition "s25r"', "duplicate"]),
]


@test
def cond_bad_configuration_is_refused_naming_file_line_and_key(env):
    failures = []
    for name, text, line, wants in BAD:
        path, r = check_config(env, name + ".lua", 'manager { }\n' + text)
        line += 1  # the manager line in front
        where = "%s:%d:" % (path, line)
        problems = []
        if r.returncode != 1:
            problems.append("exit status %s, expected 1" % r.returncode)
        if where not in r.stderr:
            problems.append("message lacks %r" % where)
        for w in wants:
            if w not in r.stderr:
                problems.append("message lacks %r" % w)
        if problems:
            failures.append("%s: %s; stderr: %r" % (name, ", ".join(problems), r.stderr.strip()))
    eq(failures, [], "bad configurations not refused as the contract says")


@test
def cond_good_configuration_with_every_condition_type_is_accepted(env):
    text = """\
manager { listen = "unix:/run/milterhub-test/never-used.sock" }
condition "s25r" { whitelist = { "example.ne.jp", "/^mx[0-9]+\\\\.example\\\\.org$/" },
                   blacklist = { "bad.example.com" }, default_whitelist = true, ipv4_only = true }
condition "remote-network" { ["local"] = { "192.0.2.0/24", "2001:db8::/32" }, remote = { "10.9.0.0/16" } }
condition "restrict-accounts" { accounts = { "a@example.org", "example.com" } }
condition "trusted-sender" { domains = { "example.net" }, macro = "{trusted_domain}", macro_value = "yes" }
condition "stress" { threshold = 100 }
condition "no-stress" { threshold = 100 }
condition "office" { type = "schedule", days = "mon-fri", hours = "09:00-18:00", timezone = "UTC" }
condition "night" { type = "schedule", hours = "22-6" }
condition "custom" { connect = function(s) return true end, mail = function(s) return nil end }
milter "a" { socket = "unix:/a", when = { "s25r", "remote-network", "restrict-accounts",
             "trusted-sender", "stress", "no-stress", "office", "night", "custom",
             "authenticated", "unauthenticated" } }
"""
    path, r = check_config(env, "good.lua", text)
    eq(r.returncode, 0, "exit status of --check-config (%s)" % r.stderr.strip())


@test
def cond_examples_pass_check_config(env):
    bad = []
    for name in ("rgrey.lua", "day-night.lua", "submission.lua", "milterhub.lua"):
        path = os.path.join(EXAMPLES, name)
        r = env.run("milterhub", [env.hub_bin, "--check-config", path], timeout=30)
        if r.returncode != 0:
            bad.append("%s: exit %s: %s" % (name, r.returncode, r.stderr.strip()))
    eq(bad, [], "examples refused by --check-config")


@test
def cond_reload_with_a_bad_condition_keeps_the_old_configuration(env):
    grey = env.testmilter(*on("mail", "tempfail"))
    listen = env.unix_spec()
    good = config([("greylist", grey, {"when": ["s25r"]})], listen=listen)
    hub = env.hub(good, listen=listen)
    eq(session(env, hub, DYNAMIC, DYNAMIC_ADDR)["result"], "tempfail", "before the reload")
    with open(hub.config_path, "w") as f:
        f.write(config([("greylist", grey, {"when": ["s25r"]})],
                       [("s25r", {"whitelist": ["example.ne.jp", "/^p(/"]})], listen=listen))
    os.kill(hub.pid, signal.SIGHUP)
    time.sleep(0.5 * SLOW)
    ok(hub.popen.poll() is None, "the hub exited on a reload with a bad configuration")
    eq(session(env, hub, DYNAMIC, DYNAMIC_ADDR)["result"], "tempfail", "after the refused reload")
    eq(session(env, hub, CLEAN, CLEAN_ADDR)["result"], "accept", "clean client after the reload")
