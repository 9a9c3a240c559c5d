"""
transport - every socket spec form of docs/tools.md on both tools: unix:,
local:, inet:PORT@HOST (Sendmail form), inet:HOST:PORT (Postfix form),
inet6:PORT@HOST; plus an unreachable milter (exit 2) and bad usage (exit 1).
"""

import socket

from common import RCPT, eq, ok, skip, test, free_port


def full_session(env, listen, connect=None):
    tm = env.testmilter(listen=listen)
    r = env.mta(connect or listen)
    eq(r["result"], "accept", "result")
    eq(r["recipients"], [RCPT], "recipients")
    ok("eom" in tm.cmds(), "eom not reached")
    return tm


@test
def unix_socket_session_runs_to_eom(env):
    full_session(env, env.unix_spec())


@test
def local_socket_spec_is_a_unix_socket(env):
    path = env.path("local.sock")
    full_session(env, "local:" + path, "unix:" + path)


@test
def inet_sendmail_form_port_at_host(env):
    port = free_port()
    full_session(env, "inet:%d@127.0.0.1" % port)


@test
def inet_postfix_form_host_colon_port(env):
    port = free_port()
    full_session(env, "inet:127.0.0.1:%d" % port)


@test
def inet_forms_interoperate_between_the_tools(env):
    port = free_port()
    full_session(env, "inet:127.0.0.1:%d" % port, "inet:%d@127.0.0.1" % port)


@test
def inet6_port_at_host_over_loopback(env):
    if not socket.has_ipv6:
        skip("no IPv6 support")
    try:
        port = free_port(socket.AF_INET6, "::1")
    except OSError as e:
        skip("no IPv6 loopback: %s" % e)
    full_session(env, "inet6:%d@::1" % port)


@test
def unreachable_milter_exits_2(env):
    r = env.mta_run(socket="unix:" + env.path("nobody.sock"))
    eq(r.returncode, 2, "exit status for a missing unix socket")
    r = env.mta_run(socket="inet:%d@127.0.0.1" % free_port())
    eq(r.returncode, 2, "exit status for a closed TCP port")


@test
def bad_usage_exits_1(env):
    eq(env.mta_run("--no-such-option", socket=env.unix_spec()).returncode, 1,
       "exit status for an unknown option")
    eq(env.mta_run(json_out=True).returncode, 1, "exit status without --socket")
    eq(env.mta_run("--macro", "nostage", socket=env.unix_spec()).returncode, 1,
       "exit status for a malformed --macro")


@test
def testmilter_exits_0_on_sigterm(env):
    tm = env.testmilter()
    env.mta(tm)
    eq(tm.proc.stop(), 0, "testmilter exit status after SIGTERM")


@test
def testmilter_numbers_connections_from_1(env):
    tm = env.testmilter()
    env.mta(tm)
    env.mta(tm)
    conns = sorted({e["conn"] for e in tm.log()})
    eq(conns, [1, 2], "connection numbers")
