"""
daemon_service - milterhub as an installed service (issue 5): the systemd unit
in contrib/systemd passes `systemd-analyze verify` and says what README promises
(foreground, reload through milterhubctl, mixed kill mode, stop timeout above the
drain timeout, runtime directory); the man pages in docs/man render through
groff and man with no warning and carry the usual sections; milterhub.lua.5 and
docs/configuration.md name exactly the keys `milterhub --show-config` prints;
`meson install` puts the programs, pages, unit and configuration in place.

Tools that are not installed (systemd-analyze, man, groff, meson) make their
test skip; scripts/install-deps installs them (systemd, man-db, groff-base).
"""

import json
import os
import re
import shutil

from common import eq, ok, skip, test

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
UNIT = os.path.join(REPO, "contrib", "systemd", "milterhub.service")
MAN_DIR = os.path.join(REPO, "docs", "man")
PAGES = ["milterhub.8", "milterhubctl.8", "milterhub.lua.5"]
CONF_PATH = "/etc/milterhub/milterhub.lua"
DRAIN_TIMEOUT_DEFAULT = 30.0


def need(program):
    path = shutil.which(program)
    if path is None:
        skip("%s is not installed (scripts/install-deps installs it)" % program)
    return path


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def unit_settings(text):
    """{(section, key): [values]} of a unit file (comments and blanks left out)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def man_tree(env):
    """A MANPATH directory holding docs/man, so man:milterhub(8) & co resolve."""
    root = env.path("man")
    for page in PAGES:
        section = os.path.join(root, "man" + page.rsplit(".", 1)[1])
        os.makedirs(section, exist_ok=True)
        shutil.copy(os.path.join(MAN_DIR, page), section)
    return root


# ------------------------------------------------------------------ the unit

@test
def systemd_unit_runs_the_master_in_the_foreground_and_reloads_through_milterhubctl(env):
    s = unit_settings(read(UNIT))

    def one(section, key):
        values = s.get((section, key), [])
        eq(len(values), 1, "number of %s= lines in [%s]" % (key, section))
        return values[0]

    eq(one("Service", "Type"), "simple", "Type")
    # -f: foreground even with `daemonize = true` in the file (Type=simple must not see the
    # main process exit).
    eq(one("Service", "ExecStart"), "/usr/sbin/milterhub -f -c " + CONF_PATH, "ExecStart")
    eq(one("Service", "ExecReload"), "/usr/sbin/milterhubctl -c %s reload" % CONF_PATH,
       "ExecReload")
    ok(("Service", "ExecStop") not in s, "no ExecStop: SIGTERM drains")
    eq(one("Service", "KillMode"), "mixed", "KillMode")
    ok(float(one("Service", "TimeoutStopSec")) > DRAIN_TIMEOUT_DEFAULT,
       "TimeoutStopSec must exceed the default drain_timeout of %g s" % DRAIN_TIMEOUT_DEFAULT)
    eq(one("Service", "RuntimeDirectory"), "milterhub", "RuntimeDirectory")
    eq(one("Service", "RuntimeDirectoryMode"), "0755", "RuntimeDirectoryMode")
    eq(one("Service", "Restart"), "on-failure", "Restart")
    # The master must start as root (it binds, starts milters as their users, rebinds).
    for key in ("User", "Group", "DynamicUser", "CapabilityBoundingSet", "PrivateUsers"):
        ok(("Service", key) not in s, "%s= would break the master's privilege drop" % key)
    eq(one("Service", "NoNewPrivileges"), "yes", "NoNewPrivileges")
    eq(one("Service", "ProtectSystem"), "full", "ProtectSystem")
    eq(one("Service", "PrivateTmp"), "yes", "PrivateTmp")
    eq(one("Service", "ProtectHome"), "yes", "ProtectHome")
    docs = one("Unit", "Documentation").split()
    eq(sorted(docs), sorted(["man:milterhub(8)", "man:milterhubctl(8)", "man:milterhub.lua(5)"]),
       "Documentation")
    eq(one("Install", "WantedBy"), "multi-user.target", "WantedBy")


@test
def systemd_analyze_verify_finds_nothing_to_say_about_the_unit(env):
    analyze = need("systemd-analyze")
    need("man")  # verify looks the Documentation= man pages up
    hub, ctl = env.hub_bin, env.ctl_bin
    text = read(UNIT)
    # verify wants the Exec binaries to exist: point them at the build.
    text = text.replace("ExecStart=/usr/sbin/milterhub ", "ExecStart=%s " % hub)
    text = text.replace("ExecReload=/usr/sbin/milterhubctl ", "ExecReload=%s " % ctl)
    ok(hub in text and ctl in text, "ExecStart/ExecReload not rewritten:\n" + text)
    os.makedirs(env.path("unit"))
    unit = env.path("unit", "milterhub.service")
    with open(unit, "w") as f:
        f.write(text)
    r = env.run("systemd-analyze",
                ["env", "MANPATH=" + man_tree(env), "SYSTEMD_LOG_COLOR=0", analyze, "verify",
                 unit], wrap=False, timeout=60)
    said = [ln for ln in (r.stdout + r.stderr).splitlines()
            if "milterhub" in ln or env.tmp in ln]
    eq(said, [], "systemd-analyze verify lines about the unit")
    eq(r.returncode, 0, "exit status of systemd-analyze verify (output: %r)"
       % (r.stdout + r.stderr)[-800:])


@test
def systemd_analyze_verify_would_report_a_broken_unit(env):
    """The check above can fail: an unknown key is reported on a line naming the unit."""
    analyze = need("systemd-analyze")
    os.makedirs(env.path("unit"))
    unit = env.path("unit", "milterhub.service")
    with open(unit, "w") as f:
        f.write(read(UNIT).replace("[Service]\n", "[Service]\nNoSuchKey=1\n")
                .replace("/usr/sbin/milterhubctl ", env.ctl_bin + " ")
                .replace("/usr/sbin/milterhub ", env.hub_bin + " "))
    r = env.run("systemd-analyze", ["env", "MANPATH=" + man_tree(env), analyze, "verify", unit],
                wrap=False, timeout=60)
    ok(any("milterhub.service" in ln and "NoSuchKey" in ln
           for ln in (r.stdout + r.stderr).splitlines()),
       "no complaint about NoSuchKey: %r" % (r.stdout + r.stderr))


# ------------------------------------------------------------- the man pages

def render_with_groff(env, page):
    groff = need("groff")
    r = env.run("groff", ["env", "LC_ALL=C.UTF-8", groff, "-man", "-Tutf8", "-ww", "-z",
                          os.path.join(MAN_DIR, page)], wrap=False, timeout=60)
    eq(r.stderr, "", "groff -ww warnings for %s" % page)
    eq(r.returncode, 0, "groff exit status for %s" % page)


def render_with_man(env, page):
    man = need("man")
    r = env.run("man", ["env", "MANWIDTH=80", "MAN_KEEP_FORMATTING=", "LC_ALL=C.UTF-8", man,
                        "-P", "cat", "-l", os.path.join(MAN_DIR, page)], wrap=False, timeout=60)
    eq(r.stderr, "", "man -l warnings for %s" % page)
    eq(r.returncode, 0, "man -l exit status for %s" % page)
    return r.stdout


@test
def man_pages_render_without_warnings_and_have_the_usual_sections(env):
    for page in PAGES:
        render_with_groff(env, page)
        out = render_with_man(env, page)
        headings = [ln for ln in out.splitlines() if re.match(r"^[A-Z][A-Z ]+$", ln)]
        for want in ("NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"):
            ok(want in headings, "%s: no %s section (sections: %r)" % (page, want, headings))
        ok(all(len(ln) <= 80 for ln in out.splitlines()),
           "%s: a line wider than MANWIDTH=80" % page)
        name = page.rsplit(".", 1)[0]
        title = "%s(%s)" % (name.upper(), page.rsplit(".", 1)[1])
        ok(out.splitlines()[0].startswith(title), "%s: header %r" % (page, out.splitlines()[0]))
        # The NAME line parses for whatis/apropos: "name - summary".
        lexgrog = shutil.which("lexgrog")
        if lexgrog:
            r = env.run("lexgrog", [lexgrog, os.path.join(MAN_DIR, page)], wrap=False)
            eq(r.returncode, 0, "lexgrog exit status for %s (%s)" % (page, r.stdout))
            ok('"%s - ' % name in r.stdout, "%s: whatis line %r" % (page, r.stdout))


@test
def man_pages_cross_reference_each_other(env):
    texts = {p: read(os.path.join(MAN_DIR, p)) for p in PAGES}
    for page, text in texts.items():
        see_also = text[text.index(".SH SEE ALSO"):]
        for other in PAGES:
            if other == page:
                continue
            name, section = other.rsplit(".", 1)
            ok(re.search(r"^\.BR %s \(%s\)" % (re.escape(name), section), see_also, re.M),
               "%s: SEE ALSO lacks %s(%s)" % (page, name, section))


# --------------------------------------------------- every key is documented

FULL = """\
manager { listen = "unix:%s" }
milter "a" { socket = "unix:/run/a.sock" }
policy "p" { socket = "inet:10023@127.0.0.1" }
"""


def shown_blocks(env):
    """{"manager"|"milter"|"policy": keys in --show-config order}; set and unset
    alike (an unset key is shown as "-- key: not set (...)"); a nested table's
    keys as "table.key"."""
    path = env.path("keys.lua")
    with open(path, "w") as f:
        f.write(FULL % env.path("never.sock"))
    r = env.run("milterhub", [env.hub_bin, "--show-config", path])
    eq(r.returncode, 0, "milterhub --show-config exit status (%s)" % r.stderr)
    blocks, current = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r'^(manager|milter|policy|condition)\b', line)
        if m:
            # Condition blocks (options per type) are documented by type, not as keys.
            current = blocks.setdefault(m.group(1), []) if m.group(1) != "condition" else None
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is None:
            continue
        m = re.match(r"^\t(?:-- )?([a-z_]+)(?: = |: )(.*)$", line)
        ok(m, "--show-config line not understood: %r" % line)
        key, value = m.group(1), m.group(2)
        sub = re.match(r"^\{ (.*) \},$", value)
        if sub and re.match(r"^[a-z_]+ = ", sub.group(1)):
            current += ["%s.%s" % (key, k) for k in re.findall(r"([a-z_]+) = ", sub.group(1))]
        else:
            current.append(key)
    return blocks


def shown_keys(env):
    """(manager keys, milter keys): see shown_blocks."""
    blocks = shown_blocks(env)
    ok(len(blocks.get("manager", [])) >= 19, "manager keys: %r" % blocks.get("manager"))
    ok("timeouts.eom" in blocks.get("milter", []), "milter keys: %r" % blocks.get("milter"))
    return blocks["manager"], blocks["milter"]


def section_terms(text, heading):
    """The keys a man page section defines: `.B key` right after `.TP`."""
    start = text.index(".SH " + heading + "\n")
    end = text.find("\n.SH ", start + 1)
    lines = text[start:end].splitlines()
    return [lines[i + 1][3:] for i in range(len(lines) - 1)
            if lines[i] == ".TP" and lines[i + 1].startswith(".B ")]


@test
def milterhub_lua_5_documents_exactly_the_keys_of_show_config(env):
    manager, milter = shown_keys(env)
    page = read(os.path.join(MAN_DIR, "milterhub.lua.5"))
    eq(sorted(section_terms(page, "MANAGER KEYS")), sorted(manager),
       "milterhub.lua.5 MANAGER KEYS vs milterhub --show-config")
    tables = sorted({k.split(".")[0] for k in milter if "." in k})  # "timeouts" itself
    eq(sorted(section_terms(page, "MILTER KEYS")), sorted(milter + tables),
       "milterhub.lua.5 MILTER KEYS vs milterhub --show-config")


@test
def milterhub_lua_5_documents_exactly_the_policy_keys_of_show_config(env):
    policy = shown_blocks(env).get("policy", [])
    ok("timeouts.read" in policy, "policy keys: %r" % policy)
    page = read(os.path.join(MAN_DIR, "milterhub.lua.5"))
    tables = sorted({k.split(".")[0] for k in policy if "." in k})
    eq(sorted(section_terms(page, "POLICY KEYS")), sorted(policy + tables),
       "milterhub.lua.5 POLICY KEYS vs milterhub --show-config")


@test
def configuration_md_documents_every_policy_key_of_show_config(env):
    policy = shown_blocks(env).get("policy", [])
    ok("timeouts.read" in policy, "policy keys: %r" % policy)
    doc = read(os.path.join(REPO, "docs", "configuration.md"))
    heading = '### `policy "NAME" { ... }` keys'
    ok(heading in doc, "docs/configuration.md has no section %r" % heading)
    start = doc.index(heading)
    end = doc.find("\n#", start + 1)
    keys = re.findall(r"^\| `([a-z_.]+)` \|", doc[start:end if end > 0 else None], re.M)
    tables = sorted({k.split(".")[0] for k in policy if "." in k})
    eq(sorted(keys), sorted(policy + tables),
       "docs/configuration.md policy table vs milterhub --show-config")


@test
def configuration_md_documents_every_key_of_show_config(env):
    manager, milter = shown_keys(env)
    doc = read(os.path.join(REPO, "docs", "configuration.md"))

    def table_keys(heading):
        start = doc.index(heading)
        end = doc.find("\n## ", start + 1)
        return re.findall(r"^\| `([a-z_.]+)` \|", doc[start:end], re.M)

    eq(sorted(table_keys("## `manager { ... }`")), sorted(manager),
       "docs/configuration.md manager table vs milterhub --show-config")
    tables = sorted({k.split(".")[0] for k in milter if "." in k})
    eq(sorted(table_keys('## `milter "NAME" { ... }`')), sorted(milter + tables),
       "docs/configuration.md milter table vs milterhub --show-config")


# --------------------------------------------------------------- installation

@test
def meson_install_puts_programs_pages_unit_and_config_in_place(env):
    meson = need("meson")
    build = env.build
    if not os.path.isdir(os.path.join(build, "meson-private")):
        skip("not a meson build directory: " + build)
    dest = env.path("dest")
    r = env.run("meson install", [meson, "install", "-C", build, "--destdir", dest,
                                  "--no-rebuild", "--quiet"], wrap=False, timeout=300)
    eq(r.returncode, 0, "meson install exit status (%s)" % (r.stdout + r.stderr)[-800:])
    r = env.run("meson introspect", [meson, "introspect", build, "--buildoptions"], wrap=False)
    eq(r.returncode, 0, "meson introspect exit status")
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    prefix = opts["prefix"]

    def installed(*parts):
        # A relative option is under the prefix; an absolute one (sysconfdir /etc with
        # prefix /usr) is not.
        p = os.path.join(prefix, *parts)
        return os.path.join(dest, p.lstrip("/"))

    for prog in ("milterhub", "milterhubctl"):
        p = installed(opts["sbindir"], prog)
        ok(os.access(p, os.X_OK), "not installed (or not executable): " + p)
    for page in PAGES:
        p = installed(opts["mandir"], "man" + page.rsplit(".", 1)[1], page)
        ok(os.path.isfile(p), "man page not installed: " + p)
        eq(read(p), read(os.path.join(MAN_DIR, page)), "installed " + page)
    unit = installed("lib/systemd/system", "milterhub.service")
    ok(os.path.isfile(unit), "unit not installed: " + unit)
    eq(read(unit), read(UNIT), "installed unit")
    conf = installed(opts["sysconfdir"], "milterhub", "milterhub.lua")
    ok(os.path.isfile(conf), "configuration not installed: " + conf)
    eq(read(conf), read(os.path.join(REPO, "examples", "milterhub.lua")), "installed config")
    # The configuration shipped as /etc/milterhub/milterhub.lua loads.
    r = env.run("milterhub", [installed(opts["sbindir"], "milterhub"), "--check-config", conf])
    eq(r.returncode, 0, "--check-config of the installed configuration (%s)" % r.stderr)


@test
def install_deps_requires_the_service_tools(env):
    text = read(os.path.join(REPO, "scripts", "install-deps"))
    listed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", " ".join(
        re.findall(r"^\s*(?:pkgs|\w+_pkgs)\+?=\((.*)\)", text, re.M))))
    for pkg in ("systemd", "man-db", "groff-base"):
        ok(pkg in listed, "scripts/install-deps does not install %s" % pkg)


@test
def installed_daemon_runs_as_the_unit_says_status_reload_and_stop(env):
    """What systemd would do with the installed files, without systemd (no PID 1 here):
    ExecStart in the background, `milterhubctl -c CONF status`, ExecReload, then the
    unit's KillSignal. /run/milterhub (RuntimeDirectory) is played by a temporary
    directory: the installed configuration's paths are pointed there and its commented
    `control` line is switched on, which is all a postmaster edits besides the milters."""
    meson = need("meson")
    build = env.build
    if not os.path.isdir(os.path.join(build, "meson-private")):
        skip("not a meson build directory: " + build)
    dest = env.path("dest")
    r = env.run("meson install", [meson, "install", "-C", build, "--destdir", dest,
                                  "--no-rebuild", "--quiet"], wrap=False, timeout=300)
    eq(r.returncode, 0, "meson install exit status")
    r = env.run("meson introspect", [meson, "introspect", build, "--buildoptions"], wrap=False)
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}

    def installed(*parts):
        return os.path.join(dest, os.path.join(opts["prefix"], *parts).lstrip("/"))

    sbin = installed(opts["sbindir"])
    conf = installed(opts["sysconfdir"], "milterhub", "milterhub.lua")
    run_dir = env.path("run")
    os.mkdir(run_dir)
    text = read(conf).replace("/run/milterhub", run_dir)
    text = re.sub(r"^(\s*)-- (control = )", r"\1\2", text, flags=re.M)
    with open(conf, "w") as f:
        f.write(text)
    s = unit_settings(read(installed("lib/systemd/system", "milterhub.service")))

    def command(key):
        argv = s[("Service", key)][0].split()
        argv[0] = os.path.join(sbin, os.path.basename(argv[0]))
        return [conf if a == CONF_PATH else a for a in argv]

    spec = "unix:" + os.path.join(run_dir, "milterhub.sock")
    hub = env.start("ExecStart", command("ExecStart"), ready=spec, expect_rc=0)
    ctl = [os.path.join(sbin, "milterhubctl"), "-c", conf]
    st = env.run("milterhubctl", ctl + ["status"])
    eq(st.returncode, 0, "milterhubctl -c CONF status (stderr: %s)" % st.stderr)
    ok(re.search(r"running, pid %d" % hub.pid, st.stdout), "status:\n" + st.stdout)
    ok("generation 1" in st.stdout, "status:\n" + st.stdout)
    r = env.run("ExecReload", command("ExecReload"))
    eq(r.returncode, 0, "ExecReload exit status (stderr: %s)" % r.stderr)
    ok("generation 2" in r.stdout, "reload answer: %r" % r.stdout)
    # A broken file: ExecReload fails, so `systemctl reload` would report it.
    with open(conf, "a") as f:
        f.write("milter {\n")
    r = env.run("ExecReload", command("ExecReload"))
    ok(r.returncode != 0, "ExecReload on a broken configuration exited 0")
    ok(re.search(r"milterhub\.lua:\d+: .*\n.*keeps running its configuration", r.stderr),
       "reload error: %r" % r.stderr)
    st = env.run("milterhubctl", [os.path.join(sbin, "milterhubctl"), "--socket",
                                  "unix:" + os.path.join(run_dir, "control.sock"), "status"])
    ok("generation 2" in st.stdout, "still generation 2:\n" + st.stdout)
    eq(hub.stop(), 0, "exit status on the unit's KillSignal (%s)" % s[("Service", "KillSignal")])
