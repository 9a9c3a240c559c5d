"""
hub_negotiation - the negotiation merge through the hub (design §2.4): the
hub asks the MTA for version 6, every offered action and every event; an NR
flag only when every child asks it; SKIP, RCPT_REJ, HDR_LEADSPC when any
child asks; macro lists: the union, a child without a list keeping the MTA's
defaults. Each child then gets only the events and macros it negotiated.
"""

from common import CONNECT_MACROS, eq, ok, register, stage, test, on, SLOW
from hub_envelope import FULL_UNKNOWN, start_hub, hub_mta, events

SKIP_BIT, RCPT_REJ, LEADSPC = 0x400, 0x800, 0x100000
NO_BITS = 0x37F  # every SMFIP_NO* bit (milter-protocol.md §4.4)
NR = {  # flag -> (stage as the report names it, bit)
    "nr-conn": ("connect", 0x1000), "nr-helo": ("helo", 0x2000), "nr-mail": ("mail", 0x4000),
    "nr-rcpt": ("rcpt", 0x8000), "nr-data": ("data", 0x10000), "nr-unkn": ("unknown", 0x20000),
    "nr-eoh": ("eoh", 0x40000), "nr-body": ("body", 0x80000), "nr-hdr": ("header", 0x80),
}
NO = {
    "no-connect": "connect", "no-helo": "helo", "no-mail": "mail", "no-rcpt": "rcpt",
    "no-data": "data", "no-hdrs": "header", "no-eoh": "eoh", "no-body": "body",
    "no-unknown": "unknown",
}


def bare(name):
    return name[1:-1] if name.startswith("{") and name.endswith("}") else name


def norm(macros):
    """Macro pairs with names compared without braces (libmilter does)."""
    return {bare(k): v for k, v in (macros or {}).items()}


def list_names(listing):
    return {bare(n) for n in (listing or "").replace(",", " ").replace(";", " ").split()}


@test
def hub_asks_the_mta_for_version_6_every_action_and_every_event(env):
    # No child wants helo, body or unknown: the hub still asks for them all
    # (conditions need every event) and answers them itself.
    tms = [env.testmilter("--negotiate", "no-helo,no-body,no-unknown,no-eoh") for _ in range(3)]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--unknown", "XFOO")
    n = r["negotiated"]
    eq((n["version"], n["actions"]), (6, 0x1FF), "negotiated (version, actions)")
    eq(n["protocol"] & NO_BITS, 0, "NO* bits the hub asked for")
    eq(n["protocol"], SKIP_BIT, "negotiated protocol (children ask SKIP only)")
    for st in ("helo", "unknown", "eoh", "body"):
        eq(stage(r, st)["reply"], "continue", "%s reply (the hub answers it itself)" % st)
    eq(r["result"], "accept", "result")
    for i, tm in enumerate(tms, 1):
        for st in ("helo", "unknown", "eoh", "body"):
            ok(st not in tm.cmds(), "child %d got %s it switched off" % (i, st))


@test
def hub_feature_flags_are_asked_when_any_child_asks(env):
    tms = [env.testmilter(), env.testmilter("--negotiate", "rcpt-rej"),
           env.testmilter("--negotiate", "leadspc")]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    eq(r["negotiated"]["protocol"], SKIP_BIT | RCPT_REJ | LEADSPC, "negotiated protocol")
    eq(r["result"], "accept", "result")


def make_nr_all(flag):
    st, bit = NR[flag]

    def t(env):
        tms = [env.testmilter("--negotiate", flag) for _ in range(3)]
        hub = start_hub(env, *tms)
        r = hub_mta(env, hub, "--unknown", "XFOO")
        ok(r["negotiated"]["protocol"] & bit, "%s not asked of the MTA when every child asked it: 0x%x"
           % (flag, r["negotiated"]["protocol"]))
        eq({s["reply"] for s in r["stages"] if s["stage"] == st}, {"none"}, "%s replies" % st)
        eq(r["result"], "accept", "result")
        for i, tm in enumerate(tms, 1):
            eq(events(tm), FULL_UNKNOWN, "events child %d saw" % i)
    register("hub_%s_is_asked_of_the_mta_when_every_child_asks_it" % flag.replace("-", "_"), t)


def make_nr_some(flag):
    st, bit = NR[flag]

    def t(env):
        # Two of three ask: the MTA must wait for the hub, and the hub must not
        # wait for the two that will never answer (read timeout 3 s, fallback
        # tempfail: a wait would show as slowness or a tempfail).
        opts = {"timeouts": {"read": 3, "eom": 3}, "fallback": "tempfail"}
        nr1, plain, nr2 = (env.testmilter("--negotiate", flag), env.testmilter(),
                           env.testmilter("--negotiate", flag))
        hub = start_hub(env, (nr1, opts), (plain, opts), (nr2, opts))
        r = hub_mta(env, hub, "--unknown", "XFOO")
        eq(r["negotiated"]["protocol"] & bit, 0, "%s asked of the MTA though one child did not" % flag)
        eq({s["reply"] for s in r["stages"] if s["stage"] == st}, {"continue"}, "%s replies" % st)
        eq((r["result"], r["error"]), ("accept", None), "(result, error)")
        ok(r["_elapsed"] < 2.0 * SLOW,
           "session took %.2fs: the hub waited for a no-reply child" % r["_elapsed"])
        for i, tm in enumerate((nr1, plain, nr2), 1):
            eq(events(tm), FULL_UNKNOWN, "events child %d saw" % i)
    register("hub_%s_is_not_asked_of_the_mta_when_one_child_did_not" % flag.replace("-", "_"), t)


for _f in NR:
    make_nr_all(_f)
    make_nr_some(_f)


def make_no_event(flag):
    st = NO[flag]

    def t(env):
        tms = [env.testmilter(), env.testmilter("--negotiate", flag), env.testmilter()]
        hub = start_hub(env, *tms)
        r = hub_mta(env, hub, "--unknown", "XFOO")
        eq(r["result"], "accept", "result")
        want = [c for c in FULL_UNKNOWN if c != st]
        eq(events(tms[1]), want, "events the child with %s saw" % flag)
        for i in (0, 2):
            eq(events(tms[i]), FULL_UNKNOWN, "events child %d saw" % (i + 1))
    register("hub_child_with_%s_never_gets_%s_while_the_others_do" % (flag.replace("-", "_"), st), t)


for _f in NO:
    make_no_event(_f)


@test
def hub_live_child_without_headers_and_body_leaves_the_replayed_child_the_whole_message(env):
    one = env.testmilter("--negotiate", "no-hdrs,no-body")
    two = env.testmilter()
    hub = start_hub(env, one, two)
    r = hub_mta(env, hub)
    eq(r["result"], "accept", "result")
    e1, e2 = one.first("eom"), two.first("eom")
    eq((e1["headers"], e1["body_len"]), (0, 0), "child 1's EOM (headers, body_len)")
    eq((e2["headers"], e2["body_len"]), (4, len(r["body"])), "child 2's EOM (headers, body_len)")


@test
def hub_macro_lists_are_the_union_and_a_child_without_a_list_keeps_the_defaults(env):
    a = env.testmilter("--negotiate", "macros=connect:{client_addr}")
    b = env.testmilter("--negotiate", "macros=connect:{client_port} _")
    c = env.testmilter()
    hub = start_hub(env, a, b, c)
    r = hub_mta(env, hub)
    listed = (r["negotiated"].get("macros") or {}).get("connect")
    eq(list_names(listed), {"client_addr", "client_port", "_", "j", "daemon_name", "daemon_addr", "v"},
       "connect macro list the hub asked for (union, with the defaults of the child without a list)")
    eq(norm(a.first("connect").get("macros")), {"client_addr": "192.0.2.1"}, "connect macros of child 1")
    eq(norm(b.first("connect").get("macros")),
       {"client_port": "54321", "_": "mx.example.net [192.0.2.1]"}, "connect macros of child 2")
    eq(norm(c.first("connect").get("macros")), norm(CONNECT_MACROS),
       "connect macros of child 3 (no list: the MTA's defaults)")
    eq(r["result"], "accept", "result")


@test
def hub_child_without_a_list_gets_the_same_macros_as_directly_behind_the_mta(env):
    # child 1 asks a list at four stages; child 2 asks none and must get, per
    # command, what it gets without the hub (queue id values aside).
    lists = ["macros=connect:{client_addr}", "macros=mail:{client_name}",
             "macros=rcpt:{client_port}", "macros=eom:{client_ptr}"]
    a = env.testmilter("--negotiate", ",".join(lists))
    b = env.testmilter()
    direct = env.testmilter()
    hub = start_hub(env, a, b)
    hub_mta(env, hub)
    env.mta(direct)

    def per_cmd(tm):
        out = {}
        for e in tm.log():
            if e["cmd"] in ("connect", "helo", "mail", "rcpt", "data", "eoh", "eom"):
                m = norm(e.get("macros"))
                if "i" in m:
                    m["i"] = "QID"
                out[e["cmd"]] = m
        return out
    eq(per_cmd(b), per_cmd(direct), "macros per command of the child without a list")
    got = per_cmd(a)
    eq(got["connect"], {"client_addr": "192.0.2.1"}, "child 1's connect macros")
    eq(got["mail"], {"client_name": "mx.example.net"}, "child 1's mail macros")
    eq(got["rcpt"], {"client_port": "54321"}, "child 1's rcpt macros")
    eq(set(got["eom"]), {"client_ptr"}, "child 1's eom macro names")
    eq(got["data"], {"i": "QID"}, "child 1's data macros (no list there: the defaults)")


@test
def hub_leadspc_asked_by_one_child_only_is_asked_of_the_mta(env):
    tms = [env.testmilter(), env.testmilter("--negotiate", "leadspc")]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub)
    ok(r["negotiated"]["protocol"] & LEADSPC,
       "HDR_LEADSPC not asked: 0x%x" % r["negotiated"]["protocol"])
    tms2 = [env.testmilter(), env.testmilter()]
    hub2 = start_hub(env, *tms2)
    r2 = hub_mta(env, hub2)
    eq(r2["negotiated"]["protocol"] & LEADSPC, 0, "HDR_LEADSPC asked though no child did")


@test
def hub_child_speaking_version_2_gets_no_event_its_version_lacks(env):
    old = env.testmilter("--negotiate", "version=2")
    tms = [env.testmilter(), old, env.testmilter()]
    hub = start_hub(env, *tms)
    r = hub_mta(env, hub, "--unknown", "XFOO")
    eq(r["result"], "accept", "result")
    eq(r["negotiated"]["version"], 6, "version the hub negotiated with the MTA")
    eq(events(old), [c for c in FULL_UNKNOWN if c not in ("unknown", "data")],
       "events of the version 2 child (no 'U' before v3, no 'T' before v4)")
    for i in (0, 2):
        eq(events(tms[i]), FULL_UNKNOWN, "events child %d saw" % (i + 1))


@test
def hub_child_with_an_empty_macro_list_keeps_the_defaults(env):
    a = env.testmilter("--negotiate", "macros=connect:")
    b = env.testmilter("--negotiate", "macros=connect:{client_addr}")
    hub = start_hub(env, a, b)
    hub_mta(env, hub)
    eq(norm(a.first("connect").get("macros")), norm(CONNECT_MACROS), "connect macros of child 1")
    eq(norm(b.first("connect").get("macros")), {"client_addr": "192.0.2.1"}, "connect macros of child 2")


def make_mta_version(version, sendmail):
    def t(env):
        tms = [env.testmilter(*on("body", "skip")), env.testmilter()]
        hub = start_hub(env, *tms)
        args = ["--version", str(version), "--unknown", "XFOO"] + (["--sendmail"] if sendmail else [])
        r = hub_mta(env, hub, *args)
        n = r["negotiated"]
        eq(n["version"], version, "negotiated version")
        mask = {2: 0x7F, 3: 0x17F, 4: 0x37F}[version]
        eq(n["protocol"] & ~mask, 0, "protocol bits beyond the version %d offer" % version)
        eq((r["result"], r["error"]), ("accept", None), "(result, error)")
        lacking = {"unknown", "data"} if version == 2 else {"data"} if version == 3 else set()
        for i, tm in enumerate(tms, 1):
            ok(not lacking & set(tm.cmds()), "child %d got an event version %d lacks: %r"
               % (i, version, tm.cmds()))
            ok("eom" in tm.cmds(), "child %d got no EOM" % i)
    register("hub_mta_offering_version_%d_%s_gets_a_reply_within_its_offer" % (
        version, "sendmail" if sendmail else "postfix"), t)


for _v in (2, 3, 4):
    make_mta_version(_v, False)
    make_mta_version(_v, True)
