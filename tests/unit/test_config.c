/*
 * test_config - milterhub.lua as the admin writes it: the built-in
 * defaults, a full config (two milters in chain order, every key), every
 * error case naming file, line and key, the sandbox, and --show-config
 * output loading back to the same values. Config files are written into
 * a mkdtemp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/mh_config.h"
#include "config/mh_config_keys.h"

static char dir[64];
static int nfile;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mh-config-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write text to a fresh file in dir; returns its path (static buffer). */
static const char *write_config(const char *text)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/c%d.lua", dir, ++nfile);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void load_ok(const char *text, struct mh_config *c)
{
	char err[1024] = "";
	const char *path = write_config(text);
	if (mh_config_load(path, c, err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
	assert_string_equal(c->path, path);
}

/*
 * The config must fail, and the message must hold "FILE:LINE:" and every
 * string in want (the key, the reason). The target config stays as it was.
 */
static void load_fails(const char *text, int line, const char *want1, const char *want2)
{
	char err[1024] = "";
	struct mh_config c;
	mh_config_defaults(&c);
	c.socket_mode = 0123; /* a marker: a failed load must not touch c */
	const char *path = write_config(text);
	assert_int_equal(mh_config_load(path, &c, err, sizeof(err)), -1);
	assert_int_equal(c.socket_mode, 0123);
	assert_null(c.path);
	char where[160];
	snprintf(where, sizeof(where), "%s:%d:", path, line);
	if (strncmp(err, where, strlen(where)) != 0)
		fail_msg("error does not start with '%s': %s", where, err);
	if (want1 && !strstr(err, want1))
		fail_msg("error lacks '%s': %s", want1, err);
	if (want2 && !strstr(err, want2))
		fail_msg("error lacks '%s': %s", want2, err);
	mh_config_free(&c);
}

static void assert_default_child(const struct mh_child_conf *cc)
{
	assert_int_equal(cc->fallback, MH_ST_ACCEPT);
	assert_true(cc->connect_timeout == 5);
	assert_true(cc->write_timeout == 7);
	assert_true(cc->read_timeout == 7);
	assert_true(cc->eom_timeout == 297);
	assert_int_equal(cc->evaluate, 0);
	assert_int_equal(cc->enabled, 1);
}

static void defaults_without_a_file(void **state)
{
	struct mh_config c;
	mh_config_defaults(&c);
	assert_null(c.path);
	assert_string_equal(c.listen_text, "inet:10025@127.0.0.1");
	assert_string_equal(c.listen.text, "inet:10025@127.0.0.1");
	assert_int_equal(c.socket_mode, 0660);
	assert_int_equal(c.log_level, MH_LOG_INFO);
	assert_null(c.tmpdir);
	assert_int_equal(c.hub.fallback, MH_ST_ACCEPT);
	assert_int_equal(c.hub.body_memory_limit, 4 << 20);
	assert_null(c.hub.tmpdir);
	assert_true(c.hub.mta_timeout == 600);
	assert_int_equal(c.hub.max_payload, 65535);
	assert_int_equal(c.hub.nchildren, 0);
	mh_config_free(&c);
	mh_config_free(&c); /* a freed (zeroed) config frees again as a no-op */
}

static void empty_file_gives_the_defaults(void **state)
{
	struct mh_config c;
	load_ok("-- nothing\n", &c);
	assert_string_equal(c.listen.text, "inet:10025@127.0.0.1");
	assert_int_equal(c.hub.nchildren, 0);
	mh_config_free(&c);
}

static const char full_config[] =
    "-- every key\n"
    "manager {\n"
    "  listen = \"unix:/run/milterhub/hub.sock\",\n"
    "  socket_mode = \"0640\",\n"
    "  fallback = \"tempfail\",\n"
    "  body_memory_limit = \"512K\",\n"
    "  tmpdir = \"/var/tmp\",\n"
    "  mta_timeout = 120.5,\n"
    "  max_payload = 1048576,\n"
    "  log_level = \"debug\",\n"
    "}\n"
    "milter \"dkim\" { socket = \"inet:8891@127.0.0.1\" }\n"
    "milter \"spam\" {\n"
    "  socket = \"inet:127.0.0.1:783\",\n"
    "  fallback = \"reject\",\n"
    "  timeouts = { connect = 1.5, write = 2, read = 3, eom = 60 },\n"
    "  evaluate = true,\n"
    "  enabled = false,\n"
    "}\n"
    "milter \"av\" { socket = \"unix:/run/clamav/clamav-milter.ctl\", timeouts = { eom = 120 },\n"
    "              fallback = \"discard\" }\n";

static void full_config_every_key(void **state)
{
	struct mh_config c;
	load_ok(full_config, &c);
	assert_string_equal(c.listen_text, "unix:/run/milterhub/hub.sock");
	assert_int_equal(c.listen.family, AF_UNIX);
	assert_int_equal(c.socket_mode, 0640);
	assert_int_equal(c.hub.fallback, MH_ST_TEMPFAIL);
	assert_int_equal(c.hub.body_memory_limit, 512 * 1024);
	assert_string_equal(c.tmpdir, "/var/tmp");
	assert_ptr_equal(c.hub.tmpdir, c.tmpdir);
	assert_true(c.hub.mta_timeout == 120.5);
	assert_int_equal(c.hub.max_payload, 1048576);
	assert_int_equal(c.log_level, MH_LOG_DEBUG);

	assert_int_equal(c.hub.nchildren, 3); /* chain order = file order */
	const struct mh_child_conf *k = c.hub.children;
	assert_string_equal(k[0].name, "dkim");
	assert_string_equal(k[0].socket_text, "inet:8891@127.0.0.1");
	assert_string_equal(k[0].sock.text, "inet:8891@127.0.0.1");
	assert_default_child(&k[0]);

	assert_string_equal(k[1].name, "spam");
	assert_string_equal(k[1].socket_text, "inet:127.0.0.1:783");
	assert_string_equal(k[1].sock.text, "inet:783@127.0.0.1");
	assert_int_equal(k[1].fallback, MH_ST_REJECT);
	assert_true(k[1].connect_timeout == 1.5);
	assert_true(k[1].write_timeout == 2);
	assert_true(k[1].read_timeout == 3);
	assert_true(k[1].eom_timeout == 60);
	assert_int_equal(k[1].evaluate, 1);
	assert_int_equal(k[1].enabled, 0);

	assert_string_equal(k[2].name, "av");
	assert_int_equal(k[2].sock.family, AF_UNIX);
	assert_int_equal(k[2].fallback, MH_ST_DISCARD);
	assert_true(k[2].connect_timeout == 5); /* the other timeouts keep their defaults */
	assert_true(k[2].eom_timeout == 120);
	mh_config_free(&c);
}

static void numbers_and_lua_code_work(void **state)
{
	struct mh_config c;
	load_ok("local base = os.getenv('MH_TEST_NO_SUCH_VAR') or '/run'\n"
	        "manager { socket_mode = 416, body_memory_limit = 8 * 1024 * 1024,\n"
	        "          fallback = 'temporary-failure' }\n"
	        "for i = 1, 3 do milter ('m' .. i) { socket = 'unix:' .. base .. '/m' .. i } end\n",
	        &c);
	assert_int_equal(c.socket_mode, 0640);
	assert_int_equal(c.hub.body_memory_limit, 8 << 20);
	assert_int_equal(c.hub.fallback, MH_ST_TEMPFAIL);
	assert_int_equal(c.hub.nchildren, 3);
	assert_string_equal(c.hub.children[2].name, "m3");
	assert_string_equal(c.hub.children[2].socket_text, "unix:/run/m3");
	mh_config_free(&c);
}

static void syntax_error(void **state)
{
	load_fails("manager { listen = \"inet:1@127.0.0.1\" }\n"
	           "milter \"a\" { socket = \"unix:/a\"\n"
	           "milter \"b\" { socket = \"unix:/b\" }\n",
	           3, "'}' expected", NULL);
}

static void runtime_error(void **state)
{
	load_fails("\n\nmilterr \"a\" { socket = \"unix:/a\" }\n", 3, "milterr", NULL);
	load_fails("local x = nil\nmilter \"a\" { socket = x .. \"/a\" }\n", 2, "concatenate",
	           NULL);
	load_fails("error('my own message')\n", 1, "my own message", NULL);
}

static void unknown_manager_key(void **state)
{
	load_fails("-- a comment\n\n\n\nmanager_ = 1\n"
	           "manager { lisen = 1 }\n",
	           6, "unknown key 'lisen'", "did you mean 'listen'");
	load_fails("manager { workers_count = 2 }\n", 1, "manager: unknown key 'workers_count'",
	           NULL);
}

static void unknown_milter_key(void **state)
{
	load_fails("manager { }\n"
	           "milter \"dkim\" { socket = \"unix:/a\" }\n"
	           "milter \"spam\" {\n"
	           "  sockt = \"unix:/b\" }\n",
	           3, "milter \"spam\": unknown key 'sockt'", "did you mean 'socket'");
	/* inside a nested table too */
	load_fails("milter \"spam\" { socket = \"unix:/b\", timeouts = { eon = 5 } }\n", 1,
	           "unknown key 'timeouts.eon'", "did you mean 'timeouts.eom'");
	/* several unknown keys: the alphabetically first, whatever Lua's order */
	load_fails("milter \"x\" { zz = 1, socket = \"unix:/b\", bb = 2, yy = 3 }\n", 1,
	           "unknown key 'bb'", NULL);
	load_fails("milter \"x\" { \"unix:/b\" }\n", 1, "milter \"x\"", "without a name");
}

static void wrong_types(void **state)
{
	load_fails("manager { listen = 10025 }\n", 1, "key 'listen'", "got number");
	load_fails("\nmanager { mta_timeout = \"600\" }\n", 2, "key 'mta_timeout'", "got string");
	load_fails("milter \"a\" { socket = \"unix:/a\", evaluate = \"yes\" }\n", 1,
	           "key 'evaluate'", "expected a boolean");
	load_fails("milter \"a\" { socket = \"unix:/a\", enabled = 1 }\n", 1, "key 'enabled'",
	           NULL);
	load_fails("milter \"a\" { socket = \"unix:/a\", timeouts = 5 }\n", 1, "key 'timeouts'",
	           "expected a table");
	load_fails("milter \"a\" { socket = \"unix:/a\", timeouts = { read = \"7\" } }\n", 1,
	           "key 'timeouts.read'", "got string");
	load_fails("manager { max_payload = 70000.5 }\n", 1, "key 'max_payload'", "whole number");
	load_fails("manager { max_payload = 100 }\n", 1, "key 'max_payload'", "between");
	load_fails("manager { body_memory_limit = \"4X\" }\n", 1, "key 'body_memory_limit'",
	           "bad size");
	load_fails("manager { socket_mode = 0660 }\n", 1, "key 'socket_mode'", "\"0660\"");
	load_fails("manager { socket_mode = \"0999\" }\n", 1, "key 'socket_mode'", "bad mode");
	load_fails("manager { log_level = \"verbose\" }\n", 1, "key 'log_level'", "verbose");
	load_fails("manager { tmpdir = \"tmp\" }\n", 1, "key 'tmpdir'", "absolute");
	load_fails("manager \"x\"\n", 1, "manager: expected one table", NULL);
	load_fails("milter { socket = \"unix:/a\" }\n", 1, "milter: expected a name", NULL);
	load_fails("milter \"a\" \"b\"\n", 1, "milter \"a\": expected a table", NULL);
	load_fails("milter \"a b\" { socket = \"unix:/a\" }\n", 1, "milter \"a b\"", "a name is");
}

static void duplicate_milter(void **state)
{
	load_fails("milter \"a\" { socket = \"unix:/a\" }\n"
	           "milter \"b\" { socket = \"unix:/b\" }\n"
	           "milter \"a\" { socket = \"unix:/c\" }\n",
	           3, "milter \"a\": duplicate name", "first at line 1");
	load_fails("manager { }\nmanager { }\n", 2, "a second manager block", "line 1");
}

static void missing_socket_and_missing_block(void **state)
{
	load_fails("milter \"a\" { fallback = \"accept\" }\n", 1, "milter \"a\"",
	           "missing key 'socket'");
	load_fails("\nmilter \"a\"\n", 2, "milter \"a\"", "no settings");
}

static void bad_socket_spec(void **state)
{
	load_fails("manager { listen = \"inet:notaport@127.0.0.1\" }\n", 1, "key 'listen'",
	           "bad port");
	load_fails("milter \"a\" {\n socket = \"tcp:1@x\" }\n", 1, "milter \"a\": key 'socket'",
	           "tcp:1@x");
	load_fails("manager { listen = \"unix:/run/hub.sock\" }\n"
	           "milter \"loop\" { socket = \"unix:/run/hub.sock\" }\n",
	           2, "milter \"loop\": key 'socket'", "own listen socket");
}

static void bad_fallback(void **state)
{
	load_fails("manager { fallback = \"maybe\" }\n", 1, "key 'fallback'", "'maybe'");
	load_fails("milter \"a\" { socket = \"unix:/a\", fallback = \"continue\" }\n", 1,
	           "milter \"a\": key 'fallback'", "'continue'");
}

static void negative_or_zero_timeout(void **state)
{
	load_fails("milter \"a\" { socket = \"unix:/a\",\n"
	           "  timeouts = { eom = -1 } }\n",
	           1, "key 'timeouts.eom'", "-1");
	load_fails("milter \"a\" { socket = \"unix:/a\", timeouts = { connect = 0 } }\n", 1,
	           "key 'timeouts.connect'", NULL);
	load_fails("manager { mta_timeout = 0/0 }\n", 1, "key 'mta_timeout'", NULL);
}

static void errors_caught_by_pcall_still_count(void **state)
{
	load_fails("pcall(milter \"a\", { sockt = 1 })\n", 1, "unknown key 'sockt'", NULL);
}

static void sandbox_has_no_io_or_require(void **state)
{
	load_fails("io.open('/etc/passwd')\n", 1, "io", NULL);
	load_fails("os.execute('true')\n", 1, "execute", NULL);
	load_fails("require('socket')\n", 1, "require", NULL);
	load_fails("dofile('/etc/passwd')\n", 1, "dofile", NULL);
	load_fails("load('return 1')\n", 1, "load", NULL);
	load_fails("string.dump(print)\n", 1, "dump", NULL);
}

static void runaway_configs_are_stopped(void **state)
{
	load_fails("\nwhile true do end\n", 2, "runs too long", NULL);
	char err[512];
	struct mh_config c;
	mh_config_defaults(&c);
	const char *path = write_config("local big = ('x'):rep(100 * 1024 * 1024)\n");
	assert_int_equal(mh_config_load(path, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "memory"));
	mh_config_free(&c);
}

static void unreadable_file(void **state)
{
	char err[512];
	struct mh_config c;
	mh_config_defaults(&c);
	assert_int_equal(mh_config_load("/nonexistent/milterhub.lua", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/milterhub.lua: cannot read"));
	assert_null(c.path);
	mh_config_free(&c);
}

/* Load, show, load the shown text: every field must be the same. */
static void assert_same(const struct mh_config *a, const struct mh_config *b)
{
	assert_string_equal(a->listen.text, b->listen.text);
	assert_int_equal(a->socket_mode, b->socket_mode);
	assert_int_equal(a->log_level, b->log_level);
	if (a->tmpdir || b->tmpdir)
		assert_string_equal(a->tmpdir, b->tmpdir);
	assert_int_equal(a->hub.fallback, b->hub.fallback);
	assert_int_equal(a->hub.body_memory_limit, b->hub.body_memory_limit);
	assert_true(a->hub.mta_timeout == b->hub.mta_timeout);
	assert_int_equal(a->hub.max_payload, b->hub.max_payload);
	assert_int_equal(a->hub.nchildren, b->hub.nchildren);
	for (size_t i = 0; i < a->hub.nchildren; i++) {
		const struct mh_child_conf *x = &a->hub.children[i], *y = &b->hub.children[i];
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->socket_text, y->socket_text);
		assert_string_equal(x->sock.text, y->sock.text);
		assert_int_equal(x->fallback, y->fallback);
		assert_true(x->connect_timeout == y->connect_timeout);
		assert_true(x->write_timeout == y->write_timeout);
		assert_true(x->read_timeout == y->read_timeout);
		assert_true(x->eom_timeout == y->eom_timeout);
		assert_int_equal(x->evaluate, y->evaluate);
		assert_int_equal(x->enabled, y->enabled);
	}
}

static void show_round_trip(const struct mh_config *a)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	mh_config_show(a, f);
	fclose(f);
	struct mh_config b;
	char err[1024] = "";
	const char *path = write_config(text);
	if (mh_config_load(path, &b, err, sizeof(err)) != 0)
		fail_msg("shown config does not load back: %s\n%s", err, text);
	assert_same(a, &b);
	/* and it shows the same text again (after its own header line) */
	char *text2 = NULL;
	size_t len2 = 0;
	f = open_memstream(&text2, &len2);
	mh_config_show(&b, f);
	fclose(f);
	assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
	free(text);
	free(text2);
	mh_config_free(&b);
}

static void show_config_loads_back(void **state)
{
	struct mh_config c;
	mh_config_defaults(&c);
	show_round_trip(&c);
	mh_config_free(&c);

	load_ok(full_config, &c);
	show_round_trip(&c);
	mh_config_free(&c);

	load_ok("manager { listen = 'unix:/tmp/we\"ird\\\\name', body_memory_limit = 1000,\n"
	        "          mta_timeout = 0.1 }\n"
	        "milter 'x' { socket = 'inet6:8891@::1', timeouts = { eom = 1e-3 } }\n",
	        &c);
	show_round_trip(&c);
	mh_config_free(&c);
}

static void show_config_text(void **state)
{
	struct mh_config c;
	load_ok(full_config, &c);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	mh_config_show(&c, f);
	fclose(f);
	assert_non_null(strstr(text, "\tsocket_mode = \"0640\",\n"));
	assert_non_null(strstr(text, "\tbody_memory_limit = \"512K\",\n"));
	assert_non_null(strstr(text, "milter \"spam\" {\n"));
	assert_non_null(
	    strstr(text, "\ttimeouts = { connect = 1.5, write = 2, read = 3, eom = 60 },\n"));
	assert_true(strstr(text, "\"dkim\"") < strstr(text, "\"spam\""));
	assert_true(strstr(text, "\"spam\"") < strstr(text, "\"av\""));
	free(text);
	mh_config_free(&c);

	mh_config_defaults(&c);
	text = NULL;
	f = open_memstream(&text, &len);
	mh_config_show(&c, f);
	fclose(f);
	assert_non_null(strstr(text, "\t-- tmpdir: not set"));
	assert_non_null(strstr(text, "\tbody_memory_limit = \"4M\",\n"));
	assert_non_null(strstr(text, "\tlog_level = \"info\",\n"));
	free(text);
	mh_config_free(&c);
}

static void size_and_mode_parsers(void **state)
{
	size_t v;
	assert_int_equal(mh_config_parse_bytes("4M", &v), 0);
	assert_int_equal(v, 4 << 20);
	assert_int_equal(mh_config_parse_bytes("512k", &v), 0);
	assert_int_equal(v, 512 << 10);
	assert_int_equal(mh_config_parse_bytes("1G", &v), 0);
	assert_int_equal(v, 1 << 30);
	assert_int_equal(mh_config_parse_bytes("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(mh_config_parse_bytes("", &v), -1);
	assert_int_equal(mh_config_parse_bytes("-1", &v), -1);
	assert_int_equal(mh_config_parse_bytes("4MB", &v), -1);
	assert_int_equal(mh_config_parse_bytes("99999999999999999999", &v), -1);
	unsigned m;
	assert_int_equal(mh_config_parse_mode("0660", &m), 0);
	assert_int_equal(m, 0660);
	assert_int_equal(mh_config_parse_mode("600", &m), 0);
	assert_int_equal(m, 0600);
	assert_int_equal(mh_config_parse_mode("0800", &m), -1);
	assert_int_equal(mh_config_parse_mode("01777", &m), -1);
	assert_int_equal(mh_config_parse_mode("", &m), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_without_a_file),
	    cmocka_unit_test(empty_file_gives_the_defaults),
	    cmocka_unit_test(full_config_every_key),
	    cmocka_unit_test(numbers_and_lua_code_work),
	    cmocka_unit_test(syntax_error),
	    cmocka_unit_test(runtime_error),
	    cmocka_unit_test(unknown_manager_key),
	    cmocka_unit_test(unknown_milter_key),
	    cmocka_unit_test(wrong_types),
	    cmocka_unit_test(duplicate_milter),
	    cmocka_unit_test(missing_socket_and_missing_block),
	    cmocka_unit_test(bad_socket_spec),
	    cmocka_unit_test(bad_fallback),
	    cmocka_unit_test(negative_or_zero_timeout),
	    cmocka_unit_test(errors_caught_by_pcall_still_count),
	    cmocka_unit_test(sandbox_has_no_io_or_require),
	    cmocka_unit_test(runaway_configs_are_stopped),
	    cmocka_unit_test(unreadable_file),
	    cmocka_unit_test(show_config_loads_back),
	    cmocka_unit_test(show_config_text),
	    cmocka_unit_test(size_and_mode_parsers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
