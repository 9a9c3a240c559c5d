/*
 * test_config_cond - condition blocks and `when` lists in milterhub.lua
 * (design §2.7, §4): built-in instances with options, built-ins named
 * directly in `when` (made once, shared), unknown names and bad options
 * naming file, line and key, and Lua conditions evaluated through
 * mh_cond_eval with a fake context: true / false / nil, the session
 * object, set_macro reaching the context, errors and endless loops
 * logged and counted as "applies". --show-config output loads back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conditions/mh_cond.h"
#include "config/mh_config.h"

static char dir[64];
static int nfile;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mh-config-cond-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

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
	if (mh_config_load(write_config(text), c, err, sizeof(err)) != 0)
		fail_msg("load failed: %s", err);
}

/* The load fails with "FILE:LINE:" first and want1, want2 somewhere. */
static void load_fails(const char *text, int line, const char *want1, const char *want2)
{
	char err[1024] = "";
	struct mh_config c;
	mh_config_defaults(&c);
	const char *path = write_config(text);
	assert_int_equal(mh_config_load(path, &c, err, sizeof(err)), -1);
	assert_null(c.conds);
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

static const struct mh_child_conf *child(const struct mh_config *c, const char *name)
{
	for (size_t i = 0; i < c->hub.nchildren; i++)
		if (strcmp(c->hub.children[i].name, name) == 0)
			return &c->hub.children[i];
	fail_msg("no milter %s", name);
	return NULL;
}

/* ------------------------------------------------------------ fake context */

struct fake {
	struct mh_cond_ctx ctx;
	char set[8][2][64]; /* set_macro calls, copied (the strings are borrowed) */
	int nset;
};

static const char *fake_macro(const struct mh_cond_ctx *ctx, const char *name)
{
	if (strcmp(name, "{auth_type}") == 0 || strcmp(name, "auth_type") == 0)
		return "PLAIN";
	if (strcmp(name, "i") == 0)
		return "4ABC";
	return NULL;
}

static void fake_set_macro(const struct mh_cond_ctx *ctx, const char *name, const char *value)
{
	struct fake *f = ctx->hub_arg;
	assert_true(f->nset < 8);
	snprintf(f->set[f->nset][0], 64, "%s", name);
	snprintf(f->set[f->nset][1], 64, "%s", value);
	f->nset++;
}

static const char *const rcpts[] = {"<a@example.org>", "<b@example.org>"};

static void fake_init(struct fake *f, enum mh_cond_stage stage)
{
	memset(f, 0, sizeof(*f));
	f->ctx = (struct mh_cond_ctx){
	    .stage = stage,
	    .client_name = "mx.example.net",
	    .client_addr = "192.0.2.7",
	    .client_family = AF_INET,
	    .helo = stage >= MH_COND_HELO ? "mx.example.net" : NULL,
	    .sender = stage >= MH_COND_MAIL ? "<s@example.net>" : NULL,
	    .rcpt = stage == MH_COND_RCPT ? "<c@example.org>" : NULL,
	    .rcpts = rcpts,
	    .nrcpts = stage > MH_COND_RCPT ? 2 : 0,
	    .header_name = stage == MH_COND_HEADER ? "Subject" : NULL,
	    .header_value = stage == MH_COND_HEADER ? "hello" : NULL,
	    .concurrent_sessions = 3,
	    .now = 1700000000,
	    .macro = fake_macro,
	    .set_macro = fake_set_macro,
	    .hub_arg = f,
	};
}

static enum mh_cond_verdict eval_at(const struct mh_cond *c, enum mh_cond_stage stage)
{
	struct fake f;
	fake_init(&f, stage);
	return mh_cond_eval(c, &f.ctx);
}

/* Evaluate with stderr captured into log (the mh_log lines). */
static enum mh_cond_verdict eval_logged(const struct mh_cond *c, struct fake *f, char *log,
                                        size_t loglen)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/stderr", dir);
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = fopen(path, "w+");
	assert_non_null(tmp);
	dup2(fileno(tmp), 2);
	enum mh_cond_verdict v = mh_cond_eval(c, &f->ctx);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t n = fread(log, 1, loglen - 1, tmp);
	log[n] = '\0';
	fclose(tmp);
	return v;
}

/* -------------------------------------------------------------- built-ins */

static void condition_blocks_with_options_and_when(void **state)
{
	struct mh_config c;
	load_ok(
	    "milter \"grey\" { socket = \"unix:/g\", when = { \"grey-s25r\", "
	    "\"unauthenticated\" } }\n"
	    "milter \"spam\" { socket = \"unix:/s\", when = { \"s25r\", \"unauthenticated\" } }\n"
	    "milter \"dkim\" { socket = \"unix:/d\" }\n"
	    "condition \"grey-s25r\" { type = \"s25r\", whitelist = { \"example.com\" },\n"
	    "                        ipv4_only = false }\n"
	    "condition \"s25r\" { blacklist = { \"bad.example\" } }\n"
	    "condition \"busy\" { type = \"stress\", threshold = 50 }\n",
	    &c);
	const struct mh_child_conf *grey = child(&c, "grey"), *spam = child(&c, "spam");
	assert_int_equal(grey->nwhen, 2);
	assert_string_equal(grey->when[0]->name, "grey-s25r");
	assert_string_equal(grey->when[0]->ops->type, "s25r");
	assert_string_equal(grey->when[1]->name, "unauthenticated");
	assert_int_equal(spam->nwhen, 2);
	assert_string_equal(spam->when[0]->name, "s25r"); /* the configured block */
	assert_ptr_not_equal(spam->when[0], grey->when[0]);
	assert_ptr_equal(spam->when[1], grey->when[1]); /* an implicit built-in is shared */
	assert_int_equal(child(&c, "dkim")->nwhen, 0);
	/* ipv4_only = false took effect: an IPv6 client is decided, not skipped. */
	struct fake f;
	fake_init(&f, MH_COND_CONNECT);
	f.ctx.client_name = "[2001:db8::1]";
	f.ctx.client_addr = "2001:db8::1";
	f.ctx.client_family = AF_INET6;
	assert_int_equal(mh_cond_eval(grey->when[0], &f.ctx), MH_COND_APPLIES);
	assert_int_equal(mh_cond_eval(spam->when[0], &f.ctx), MH_COND_NOT_APPLICABLE);
	mh_config_free(&c);
}

static void unknown_condition_in_when_names_line_and_key(void **state)
{
	load_fails("manager { }\n"
	           "milter \"grey\" {\n"
	           "  socket = \"unix:/g\",\n"
	           "  when = { \"s25r\", \"no-such-thing\" } }\n",
	           4, "milter \"grey\": key 'when': unknown condition 'no-such-thing'", "s25r");
	load_fails("milter \"a\" { socket = \"unix:/a\", when = \"s25r\" }\n", 1, "key 'when'",
	           "list of condition names");
	load_fails("milter \"a\" { socket = \"unix:/a\", when = { 1 } }\n", 1, "key 'when'",
	           "item 1");
}

static void bad_options_name_the_line_and_key(void **state)
{
	load_fails("\ncondition \"net\" {\n  type = \"remote-network\",\n"
	           "  ["
	           "\"local\"] = { \"10.0.0.0/8\", \"10.300.0.0/16\" } }\n",
	           4, "local", "10.300.0.0/16");
	load_fails("condition \"s25r\" {\n  whitelst = { \"example.com\" } }\n", 2,
	           "unknown key 'whitelst'", NULL);
	load_fails("condition \"s\" { type = \"s25r\", whitelist = print }\n", 1, "key 'whitelist'",
	           "got function");
	load_fails("condition \"s\" { type = \"s25r\", whitelist = { x = 1 } }\n", 1,
	           "key 'whitelist'", "list of strings");
	load_fails("condition \"s\" {\n type = \"sr25\" }\n", 2, "key 'type'", "'sr25'");
	load_fails("condition \"s\" { type = 4 }\n", 1, "key 'type'", "expected a string");
	load_fails("condition \"mine\" { }\n", 1, "condition \"mine\"", "not a built-in");
	load_fails("condition \"s25r\" { }\ncondition \"s25r\" { }\n", 2, "duplicate name",
	           "line 1");
	load_fails("condition \"x\" { connect = function() end, helo = 3 }\n", 1, "key 'helo'",
	           "expected a function");
	load_fails("condition \"x\" { connect = function() end, type2 = 3 }\n", 1,
	           "unknown key 'type2'", "Lua condition");
	load_fails("condition \"a b\" { }\n", 1, "a name is", NULL);
	load_fails("condition \"x\" \"y\"\n", 1, "expected a table", NULL);
}

/* ----------------------------------------------------------- Lua conditions */

static const struct mh_cond *the_when(const struct mh_config *c, size_t i)
{
	assert_true(c->hub.nchildren >= 1 && c->hub.children[0].nwhen > i);
	return c->hub.children[0].when[i];
}

static void lua_condition_answers_true_false_nil(void **state)
{
	struct mh_config c;
	load_ok(
	    "local big = { [\"mx.example.net\"] = true }\n"
	    "condition \"mine\" {\n"
	    "  connect = function(s) if big[s.client_name] then return nil end return false end,\n"
	    "  helo = function(s) return s.helo == \"other\" end,\n"
	    "  mail = function(s) return true end,\n"
	    "  rcpt = function(s) return s.recipient == \"<c@example.org>\" end,\n"
	    "}\n"
	    "milter \"a\" { socket = \"unix:/a\", when = { \"mine\", \"s25r\" } }\n",
	    &c);
	const struct mh_cond *mine = the_when(&c, 0);
	assert_string_equal(mine->ops->type, "lua");
	assert_string_equal(mine->name, "mine");
	assert_int_equal(eval_at(mine, MH_COND_CONNECT), MH_COND_UNDECIDED);
	assert_int_equal(eval_at(mine, MH_COND_HELO), MH_COND_NOT_APPLICABLE);
	assert_int_equal(eval_at(mine, MH_COND_MAIL), MH_COND_APPLIES);
	assert_int_equal(eval_at(mine, MH_COND_RCPT), MH_COND_APPLIES);
	assert_int_equal(eval_at(mine, MH_COND_EOM), MH_COND_UNDECIDED); /* no function */
	mh_config_free(&c);
}

static void lua_condition_sees_the_session(void **state)
{
	struct mh_config c;
	load_ok(
	    "condition \"look\" { header = function(s)\n"
	    "  local r = s.recipients\n"
	    "  assert(s.stage == \"header\", s.stage)\n"
	    "  assert(s.client_name == \"mx.example.net\" and s.client_address == \"192.0.2.7\")\n"
	    "  assert(s.helo == \"mx.example.net\" and s.sender == \"<s@example.net>\")\n"
	    "  assert(#r == 2 and r[2] == \"<b@example.org>\" and s.recipient == nil)\n"
	    "  assert(s.header_name == \"Subject\" and s.header_value == \"hello\")\n"
	    "  assert(s.concurrent_sessions == 3 and s.now == 1700000000)\n"
	    "  assert(s:macro(\"{auth_type}\") == \"PLAIN\" and s:macro(\"j\") == nil)\n"
	    "  assert(s.no_such_field == nil)\n"
	    "  assert(not pcall(function() s.helo = 1 end))\n"
	    "  s:set_macro(\"{trusted_domain}\", \"yes\")\n"
	    "  s:set_macro(\"{n}\", 42)\n"
	    "  return false\n"
	    "end }\n"
	    "milter \"a\" { socket = \"unix:/a\", when = { \"look\" } }\n",
	    &c);
	struct fake f;
	fake_init(&f, MH_COND_HEADER);
	char log[2048];
	enum mh_cond_verdict v = eval_logged(the_when(&c, 0), &f, log, sizeof(log));
	if (v != MH_COND_NOT_APPLICABLE)
		fail_msg("verdict %d, log: %s", v, log);
	assert_int_equal(f.nset, 2);
	assert_string_equal(f.set[0][0], "{trusted_domain}");
	assert_string_equal(f.set[0][1], "yes");
	assert_string_equal(f.set[1][1], "42");
	mh_config_free(&c);
}

/* A hub's view of the message and the other children, faked. */
static const char *const fake_hdrs[][2] = {
    {"From", "x@example.net"},
    {"X-Spam", "yes"},
    {"Subject", "hello"},
};
static const char *const fake_kids[][2] = {{"a", "tempfail"}, {"b", NULL}, {"c", "continue"}};

static size_t fake_headers(const struct mh_cond_ctx *ctx, size_t i, const char **name,
                           const char **value)
{
	if (i < 3) {
		*name = fake_hdrs[i][0];
		*value = fake_hdrs[i][1];
	}
	return 3;
}

static const char *fake_child_result(const struct mh_cond_ctx *ctx, const char *child_name)
{
	for (size_t i = 0; i < 3; i++)
		if (strcmp(fake_kids[i][0], child_name) == 0)
			return fake_kids[i][1];
	return NULL;
}

static size_t fake_children(const struct mh_cond_ctx *ctx, size_t i, const char **name)
{
	if (i < 3)
		*name = fake_kids[i][0];
	return 3;
}

static void lua_condition_sees_headers_and_results(void **state)
{
	struct mh_config c;
	load_ok("condition \"look\" { eoh = function(s)\n"
	        "  local h = s.headers\n"
	        "  assert(#h == 3 and h[1].name == \"From\" and h[1].value == \"x@example.net\")\n"
	        "  assert(h[3].value == \"hello\")\n"
	        "  assert(s:result(\"c\") == \"continue\" and s:result(\"b\") == nil)\n"
	        "  assert(s:result(\"nobody\") == nil)\n"
	        "  local r, n = s.results, 0\n"
	        "  for k, v in pairs(r) do n = n + 1 end\n"
	        "  assert(n == 2 and r.a == \"tempfail\" and r.c == \"continue\", n)\n"
	        "  return not (h[2].name == \"X-Spam\" and s:result(\"a\") == \"tempfail\")\n"
	        "end }\n"
	        "milter \"a\" { socket = \"unix:/a\", when = { \"look\" } }\n",
	        &c);
	struct fake f;
	char log[2048];
	fake_init(&f, MH_COND_EOH);
	f.ctx.headers = fake_headers;
	f.ctx.child_result = fake_child_result;
	f.ctx.children = fake_children;
	enum mh_cond_verdict v = eval_logged(the_when(&c, 0), &f, log, sizeof(log));
	if (v != MH_COND_NOT_APPLICABLE)
		fail_msg("verdict %d, log: %s", v, log);
	/* Without the callbacks (NULL): an empty table and nil, no crash. */
	mh_config_free(&c);
	load_ok("condition \"bare\" { eoh = function(s)\n"
	        "  assert(#s.headers == 0 and s:result(\"a\") == nil and next(s.results) == nil)\n"
	        "  return false\n"
	        "end }\n"
	        "milter \"a\" { socket = \"unix:/a\", when = { \"bare\" } }\n",
	        &c);
	fake_init(&f, MH_COND_EOH);
	v = eval_logged(the_when(&c, 0), &f, log, sizeof(log));
	if (v != MH_COND_NOT_APPLICABLE)
		fail_msg("verdict %d, log: %s", v, log);
	mh_config_free(&c);
}

static void lua_errors_apply_and_are_logged(void **state)
{
	struct mh_config c;
	load_ok("local kept\n"
	        "condition \"boom\" {\n"
	        "  connect = function(s) kept = s; error(\"no way\") end,\n"
	        "  helo = function(s) return kept.helo end,\n"
	        "  mail = function(s) return 42 end,\n"
	        "  rcpt = function(s) milter \"late\" { socket = \"unix:/l\" } end,\n"
	        "  data = function(s) s:set_macro(\"x\\0y\", \"1\") end,\n"
	        "}\n"
	        "milter \"a\" { socket = \"unix:/a\", when = { \"boom\" } }\n",
	        &c);
	const struct mh_cond *boom = the_when(&c, 0);
	struct {
		enum mh_cond_stage stage;
		const char *want;
	} cases[] = {
	    {MH_COND_CONNECT, ":3: no way"},
	    {MH_COND_HELO, "valid only during its condition call"},
	    {MH_COND_MAIL, "mail returned a number"},
	    {MH_COND_RCPT, "only while the configuration loads"},
	    {MH_COND_DATA, "NUL"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		fake_init(&f, cases[i].stage);
		char log[2048];
		assert_int_equal(eval_logged(boom, &f, log, sizeof(log)), MH_COND_APPLIES);
		if (!strstr(log, "condition boom: lua error: ") || !strstr(log, cases[i].want))
			fail_msg("case %zu: log lacks '%s': %s", i, cases[i].want, log);
		assert_int_equal(f.nset, 0);
	}
	/* The file name replaces Lua's chunk name. */
	struct fake f;
	fake_init(&f, MH_COND_CONNECT);
	char log[2048];
	eval_logged(boom, &f, log, sizeof(log));
	assert_non_null(strstr(log, c.path));
	assert_int_equal(c.hub.nchildren, 1); /* the late milter call changed nothing */
	mh_config_free(&c);
}

static void endless_loops_are_stopped(void **state)
{
	struct mh_config c;
	load_ok(
	    "condition \"spin\" {\n"
	    "  connect = function(s) while true do end end,\n"
	    "  helo = function(s) while true do pcall(function() while true do end end) end end,\n"
	    "  mail = function(s) local n = 0 for i = 1, 1000 do n = n + i end return n > 0 end,\n"
	    "}\n"
	    "milter \"a\" { socket = \"unix:/a\", when = { \"spin\" } }\n",
	    &c);
	const struct mh_cond *spin = the_when(&c, 0);
	for (int stage = MH_COND_CONNECT; stage <= MH_COND_HELO; stage++) {
		struct fake f;
		fake_init(&f, (enum mh_cond_stage)stage);
		char log[2048];
		time_t t0 = time(NULL);
		assert_int_equal(eval_logged(spin, &f, log, sizeof(log)), MH_COND_APPLIES);
		assert_true(time(NULL) - t0 < 10);
		if (!strstr(log, "condition spin: lua error: ") || !strstr(log, "endless loop"))
			fail_msg("stage %d: log: %s", stage, log);
	}
	/* The state is usable afterwards, and the limit is per call. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(eval_at(spin, MH_COND_MAIL), MH_COND_APPLIES);
	mh_config_free(&c);
}

/* A config with no Lua condition closes its state; one with a Lua condition keeps it. */
static void lua_state_kept_only_when_needed(void **state)
{
	struct mh_config a, b;
	load_ok(
	    "condition \"s25r\" { }\nmilter \"a\" { socket = \"unix:/a\", when = {\"s25r\"} }\n",
	    &a);
	load_ok("condition \"x\" { eom = function(s) return true end }\n"
	        "milter \"a\" { socket = \"unix:/a\", when = {\"x\"} }\n",
	        &b);
	assert_int_equal(eval_at(the_when(&b, 0), MH_COND_EOM), MH_COND_APPLIES);
	mh_config_free(&a);
	mh_config_free(&b);
	mh_config_free(&b); /* zeroed: a no-op */
}

/* ---------------------------------------------------------------- --show-config */

static char *show(const struct mh_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	mh_config_show(c, f);
	fclose(f);
	return buf;
}

/* Remove the lines that name the config file (first line, Lua condition notes). */
static void drop_file_lines(char *text)
{
	char *out = text;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
		if (line != text && strncmp(line, "-- condition \"", 14) != 0) {
			memmove(out, line, len);
			out += len;
		}
		line += len;
	}
	*out = '\0';
}

static void show_config_prints_conditions_and_loads_back(void **state)
{
	struct mh_config a, b;
	load_ok(
	    "condition \"grey-s25r\" { type = \"s25r\", whitelist = { \"example.com\", "
	    "\"a\\\"b\" },\n  ipv4_only = false }\n"
	    "condition \"busy\" { type = \"stress\", threshold = 50 }\n"
	    "condition \"mine\" { connect = function(s) return true end, eom = function() end }\n"
	    "milter \"grey\" { socket = \"unix:/g\", when = { \"grey-s25r\", \"unauthenticated\", "
	    "\"mine\" } }\n"
	    "milter \"dkim\" { socket = \"unix:/d\", when = { } }\n"
	    "milter \"spam\" { socket = \"unix:/s\" }\n",
	    &a);
	char *text = show(&a);
	const char *wants[] = {
	    "condition \"grey-s25r\" {\n\ttype = \"s25r\",\n\tipv4_only = false,\n"
	    "\twhitelist = { \"example.com\", \"a\\\"b\" },\n}\n",
	    "condition \"busy\" {\n\ttype = \"stress\",\n\tthreshold = 50,\n}\n",
	    "condition \"unauthenticated\" {\n\ttype = \"unauthenticated\",\n}\n",
	    "is written in Lua: its functions cannot be printed",
	    "condition \"mine\" {\n\tconnect = function(s) end,\n\teom = function(s) end,\n}\n",
	    "\twhen = { \"grey-s25r\", \"unauthenticated\", \"mine\" },\n",
	    "\twhen = {},\n",
	    "\t-- when: not set",
	};
	for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++)
		if (!strstr(text, wants[i]))
			fail_msg("show lacks '%s':\n%s", wants[i], text);
	load_ok(text, &b);
	char *again = show(&b);
	/* Equal but for the lines naming the file. */
	drop_file_lines(text);
	drop_file_lines(again);
	assert_string_equal(again, text);
	assert_int_equal(b.hub.children[0].nwhen, 3);
	free(text);
	free(again);
	mh_config_free(&a);
	mh_config_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(condition_blocks_with_options_and_when),
	    cmocka_unit_test(unknown_condition_in_when_names_line_and_key),
	    cmocka_unit_test(bad_options_name_the_line_and_key),
	    cmocka_unit_test(lua_condition_answers_true_false_nil),
	    cmocka_unit_test(lua_condition_sees_the_session),
	    cmocka_unit_test(lua_condition_sees_headers_and_results),
	    cmocka_unit_test(lua_errors_apply_and_are_logged),
	    cmocka_unit_test(endless_loops_are_stopped),
	    cmocka_unit_test(lua_state_kept_only_when_needed),
	    cmocka_unit_test(show_config_prints_conditions_and_loads_back),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
