"""
failures - a misbehaving milter ends the session with result "error" and
exit status 3, the report still printed (docs/tools.md "Exit status"):
hang (timeout within --timeout), close, garbage, and a modification outside
eom (legal only in reply to 'E', milter-protocol.md §3).
"""

from common import eq, ok, register, stage, test, on, SLOW


@test
def hang_times_out_within_the_timeout(env):
    tm = env.testmilter(*on("rcpt", "hang"))
    r = env.mta(tm, "--timeout", "1", rc=3)
    eq(r["result"], "error", "result")
    eq(r["error"], "timeout", "error")
    eq(stage(r, "rcpt")["reply"], "error", "rcpt stage reply")
    ok(0.9 <= r["_elapsed"] < 3.0 * SLOW, "hang at --timeout 1 took %.2fs" % r["_elapsed"])


@test
def hang_at_eom_times_out(env):
    tm = env.testmilter(*on("eom", "hang"))
    r = env.mta(tm, "--timeout", "1", rc=3)
    eq((r["result"], r["error"]), ("error", "timeout"), "(result, error)")
    ok(r["_elapsed"] < 3.0 * SLOW, "took %.2fs" % r["_elapsed"])


@test
def delay_longer_than_the_timeout_is_a_timeout(env):
    tm = env.testmilter(*on("mail", "delay:3000", "continue"))
    r = env.mta(tm, "--timeout", "1", rc=3)
    eq((r["result"], r["error"]), ("error", "timeout"), "(result, error)")
    ok(r["_elapsed"] < 2.5 * SLOW, "took %.2fs" % r["_elapsed"])


@test
def close_mid_session_is_an_error(env):
    tm = env.testmilter(*on("mail", "close"))
    r = env.mta(tm, rc=3)
    eq(r["result"], "error", "result")
    eq(r["error"], "closed", "error")
    eq(stage(r, "mail")["reply"], "error", "mail stage reply")


@test
def close_at_connect_is_an_error(env):
    tm = env.testmilter(*on("connect", "close"))
    r = env.mta(tm, rc=3)
    eq((r["result"], r["error"]), ("error", "closed"), "(result, error)")


@test
def garbage_reply_is_an_error(env):
    tm = env.testmilter(*on("data", "garbage"))
    r = env.mta(tm, rc=3)
    eq(r["result"], "error", "result")
    ok(isinstance(r["error"], str) and r["error"].startswith("malformed"),
       "error %r does not start with 'malformed'" % r["error"])
    eq(stage(r, "data")["reply"], "error", "data stage reply")


def make_outside(stage_name, action):
    def t(env):
        tm = env.testmilter(*on(stage_name, action, "continue"))
        r = env.mta(tm, rc=3)
        eq(r["result"], "error", "result")
        ok(r["error"], "no error text")
        eq(r["error"], "unexpected reply", "error")
        failing = [s for s in r["stages"] if s["stage"] == stage_name][0]
        eq(failing["reply"], "error", "%s stage reply" % stage_name)
    register("%s_at_%s_is_an_error" % (action.split(":")[0].replace("-", "_"), stage_name), t)


for _s, _a in [("connect", "add-header:X-A:1"), ("mail", "chg-from:<x@example.net>"),
               ("rcpt", "add-rcpt:<x@example.org>"), ("rcpt", "del-rcpt:<rcpt@example.org>"),
               ("data", "ins-header:0:X-A:1"), ("header", "chg-header:Subject:1:x"),
               ("eoh", "add-rcpt-par:<x@example.org>:NOTIFY=NEVER"), ("body", "repl-body:x"),
               ("helo", "add-header:X-A:1")]:
    make_outside(_s, _a)


@test
def error_ends_the_session_without_later_messages(env):
    tm = env.testmilter(*on("mail", "close"))
    r = env.mta(tm, "--messages", "2", rc=3)
    eq(r["result"], "error", "result")
    eq(len(tm.all("mail")), 1, "MAILs the milter got")
