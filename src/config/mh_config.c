/*
 * NAME
 *	mh_config 3
 * SUMMARY
 *	milterhub.lua: run it in a Lua sandbox, validate, fill plain C structs
 * SYNOPSIS
 *	#include "config/mh_config.h"
 *
 *	void	mh_config_defaults(struct mh_config *c);
 *	int	mh_config_load(const char *path, struct mh_config *c,
 *			char *err, size_t errlen);
 *	void	mh_config_show(const struct mh_config *c, FILE *out);
 *	void	mh_config_free(struct mh_config *c);
 * DESCRIPTION
 *	The configuration is a Lua 5.4 program (design §4). It runs once, in
 *	a fresh state, with three globals besides a harmless standard library:
 *	    manager { key = value, ... }
 *	    milter "name" { key = value, ..., when = { "cond", ... } }
 *	    condition "name" { type = "s25r", option = value, ... }
 *	    condition "name" { connect = function(s) ... end, ... }
 *	(`milter "name"` returns a function that takes the table; conditions
 *	and `when` lists: mh_config_cond.c, Lua conditions: mh_lua_cond.c). Each call
 *	is validated at once against the rows of mh_config_keys.c, so an
 *	error carries the line of its block, and fills the C structs being
 *	built: the manager's fields of struct mh_config, one struct
 *	mh_child_conf per milter block, in call order (= chain order).
 *	When the program has run, the state is closed, unless a Lua
 *	condition needs it: it then stays open, owned by the config, and
 *	only that condition's eval calls into it (manager, milter and
 *	condition raise an error once loading is over). Nothing below the
 *	daemon ever sees Lua (design §1).
 *
 *	Sandbox: base (without dofile, loadfile, load, collectgarbage; print
 *	writes to stderr), string (without dump), table, math, utf8, and an
 *	os table holding only getenv, time, clock, date, difftime. No
 *	package/require, io or debug. The file is loaded as text (never
 *	bytecode). Memory is capped at 64 MiB (also later, for Lua
 *	conditions) and the program at about 10^8 VM instructions, so a
 *	runaway config fails instead of hanging --check-config.
 *
 *	mh_config_load() builds into a private struct and moves it into *c
 *	only on success: a failed reload leaves the running configuration
 *	as it was.
 * DIAGNOSTICS
 *	One line, always beginning "FILE:" and, where a line is known,
 *	"FILE:LINE:":
 *	    FILE:4: milter "spam": unknown key 'sockt' (did you mean 'socket'?)
 *	    FILE:2: manager: key 'fallback': unknown status 'maybe' (...)
 *	    FILE:7: milter "a": duplicate name (first at line 3)
 *	    FILE:9: milter "a": key 'when': unknown condition 'x' (...)
 *	    FILE:5: '}' expected (to close '{' at line 3) near 'milter'
 *	    FILE: cannot read: No such file or directory
 *	A validation error is final even when the config catches it with
 *	pcall: the first one is reported.
 */
#include "config/mh_config.h"
#include "config/mh_config_cond.h"
#include "config/mh_config_keys.h"
#include "config/mh_lua_cond.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"

#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_LISTEN "inet:10025@127.0.0.1"
#define MEMORY_LIMIT ((size_t)64 << 20)
#define FILE_LIMIT ((size_t)16 << 20)
#define INSTRUCTION_STEP 10000
#define INSTRUCTION_LIMIT 10000 /* steps: 10^8 instructions */
#define NAME_MAX_LEN 64
#define CHUNK_TOKEN MH_CONFIG_CHUNK_TOKEN

/* One `milter "name"` seen, with or without its table yet. */
struct declared {
	char *name;
	int line;
	int done; /* its { ... } was given */
	int policy; /* declared with policy "name" (else milter "name") */
};

struct loader {
	const char *path;
	struct mh_config_conds *cs; /* = c->conds; the Lua state's allocator counts in it */
	struct mh_config *c; /* being built */
	size_t cap; /* of c->hub.children */
	struct declared *names;
	size_t nnames, capnames;
	int manager_line; /* 0: no manager block yet */
	char *first_error;
	const char *text; /* the file's bytes */
	size_t textlen;
	unsigned long steps;
};

/* ------------------------------------------------------------------ defaults */

void mh_config_defaults(struct mh_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen_text = mh_xstrdup(DEFAULT_LISTEN);
	int rc = mh_sockspec_parse(DEFAULT_LISTEN, &c->listen, NULL, 0);
	assert(rc == 0);
	(void)rc;
	c->socket_mode = 0660;
	c->log_level = MH_LOG_INFO;
	c->hub.fallback = MH_ST_ACCEPT; /* design §2.5 */
	c->hub.body_memory_limit = (size_t)4 << 20;
	c->hub.tmpdir = NULL;
	c->hub.mta_timeout = 600;
	c->hub.max_payload = MH_PAYLOAD_DEFAULT_MAX;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	c->workers = cpus < 1 ? 1 : cpus > MH_WORKERS_MAX ? MH_WORKERS_MAX : (size_t)cpus;
	c->drain_timeout = 30;
	c->log = mh_xstrdup("stderr");
	c->syslog_facility = mh_xstrdup("mail");
	c->control_mode = 0600;
}

static void child_defaults(struct mh_child_conf *cc)
{
	memset(cc, 0, sizeof(*cc));
	cc->fallback = MH_ST_ACCEPT;
	/* design §2.5: below Sendmail's and Postfix's own milter timeouts */
	cc->connect_timeout = 5;
	cc->write_timeout = 7;
	cc->read_timeout = 7;
	cc->eom_timeout = 297;
	cc->evaluate = 0;
	cc->enabled = 1;
	cc->health_interval = 10;
	cc->restart_delay = 1;
}

void mh_config_free(struct mh_config *c)
{
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		free(c->hub.children[i].name);
		free(c->hub.children[i].socket_text);
		free((void *)c->hub.children[i].when); /* the conditions are in c->conds */
		for (char **a = c->hub.children[i].command; a && *a; a++)
			free(*a);
		free(c->hub.children[i].command);
		free(c->hub.children[i].user);
		free(c->hub.children[i].group);
	}
	free(c->hub.children);
	mh_config_conds_free(c->conds); /* conditions first, then the Lua state */
	free(c->path);
	free(c->listen_text);
	free(c->tmpdir);
	free(c->user);
	free(c->group);
	free(c->socket_group);
	free(c->pid_file);
	free(c->log);
	free(c->syslog_facility);
	free(c->control);
	free(c->stats);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ error handling */

/* The line of the Lua code that called the running C function. */
static int caller_line(lua_State *L)
{
	lua_Debug ar;
	for (int level = 1; level < 16 && lua_getstack(L, level, &ar); level++)
		if (lua_getinfo(L, "l", &ar) && ar.currentline > 0)
			return ar.currentline;
	return 0;
}

/* Raise "FILE:LINE: message" (and remember the first, see DIAGNOSTICS). */
#define FAIL_NAMED (-1) /* as line: the message names file and line itself */
static int fail(lua_State *L, struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(lua_State *L, struct loader *ld, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* No heap here: lua_pushstring may raise, and nothing must leak then. */
	char full[1400];
	if (line > 0)
		snprintf(full, sizeof(full), "%s:%d: %s", ld->path, line, msg);
	else if (line == 0)
		snprintf(full, sizeof(full), "%s: %s", ld->path, msg);
	else /* FAIL_NAMED: msg already begins "FILE:LINE:" */
		snprintf(full, sizeof(full), "%s", msg);
	if (ld->first_error == NULL)
		ld->first_error = mh_xstrdup(full);
	lua_pushstring(L, full);
	return lua_error(L);
}

/* ------------------------------------------------------------- constructors */

/* The loader, or a Lua error once loading is over (a Lua condition calling milter). */
static struct loader *upvalue_loader(lua_State *L)
{
	struct mh_config_conds *cs = lua_touserdata(L, lua_upvalueindex(1));
	if (cs->loader == NULL)
		luaL_error(L, "manager, milter and condition work only while the configuration "
		              "loads");
	return cs->loader;
}

/*
 * user / group / socket_group must name accounts of this system: a typo
 * is found by --check-config, not by a worker failing at 3 a.m.
 */
static int unknown_id(const char *user, const char *group, const char *sgroup, char *why,
                      size_t whylen)
{
	if (user != NULL && getpwnam(user) == NULL)
		return mh_errf(why, whylen, "key 'user': no such user '%s'", user);
	if (group != NULL && getgrnam(group) == NULL)
		return mh_errf(why, whylen, "key 'group': no such group '%s'", group);
	if (sgroup != NULL && getgrnam(sgroup) == NULL)
		return mh_errf(why, whylen, "key 'socket_group': no such group '%s'", sgroup);
	return 0;
}

static int l_manager(lua_State *L)
{
	struct loader *ld = upvalue_loader(L);
	int line = caller_line(L);
	if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TTABLE)
		return fail(L, ld, line,
		            "manager: expected one table, as in manager { listen = \"%s\" }",
		            DEFAULT_LISTEN);
	if (ld->manager_line)
		return fail(L, ld, line,
		            "manager: a second manager block (the first is at line %d)",
		            ld->manager_line);
	ld->manager_line = line;
	char why[768];
	if (mh_config_parse_block(L, 1, ld->c, mh_config_manager_keys, "", why, sizeof(why)) < 0)
		return fail(L, ld, line, "manager: %s", why);
	if (unknown_id(ld->c->user, ld->c->group, ld->c->socket_group, why, sizeof(why)) < 0)
		return fail(L, ld, line, "manager: %s", why);
	return 0;
}

static int l_milter_block(lua_State *L)
{
	struct loader *ld = upvalue_loader(L);
	struct declared *d = &ld->names[lua_tointeger(L, lua_upvalueindex(2))];
	const char *what = d->policy ? "policy" : "milter";
	int line = caller_line(L);
	if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TTABLE)
		return fail(L, ld, line,
		            "%s \"%s\": expected a table, as in %s \"%s\" { socket = ... }", what,
		            d->name, what, d->name);
	if (d->done)
		return fail(L, ld, line, "%s \"%s\": duplicate name (first at line %d)", what,
		            d->name, d->line);
	d->done = 1;

	/* Append first, then fill: whatever happens, the config can free it. */
	struct mh_hub_conf *hub = &ld->c->hub;
	if (hub->nchildren == MH_HUB_CHILDREN_MAX)
		return fail(L, ld, line, "%s \"%s\": more than %d milters and policies", what,
		            d->name, MH_HUB_CHILDREN_MAX);
	if (hub->nchildren == ld->cap) {
		ld->cap = ld->cap ? 2 * ld->cap : 4;
		hub->children = mh_xrealloc(hub->children, ld->cap * sizeof(*hub->children));
	}
	struct mh_child_conf *cc = &hub->children[hub->nchildren++];
	child_defaults(cc);
	cc->name = mh_xstrdup(d->name);
	if (d->policy) {
		/* issue 9: a Postfix policy server, asked at RCPT unless told otherwise */
		cc->kind = MH_CHILD_POLICY;
		cc->policy_stage = 'R';
		cc->policy_connections = 4;
	}

	char why[768];
	if (mh_config_parse_block(L, 1, cc,
	                          d->policy ? mh_config_policy_keys : mh_config_milter_keys, "",
	                          why, sizeof(why)) < 0)
		return fail(L, ld, line, "%s \"%s\": %s", what, d->name, why);
	if (cc->socket_text == NULL)
		return fail(L, ld, line, "%s \"%s\": missing key 'socket'", what, d->name);
	if ((cc->user != NULL || cc->group != NULL) && cc->command == NULL)
		return fail(L, ld, line,
		            "milter \"%s\": key '%s' needs 'command' (who runs a milter "
		            "milterhub does not start is not its business)",
		            d->name, cc->user ? "user" : "group");
	if (unknown_id(cc->user, cc->group, NULL, why, sizeof(why)) < 0)
		return fail(L, ld, line, "milter \"%s\": %s", d->name, why);
	lua_pushliteral(L, "when");
	if (lua_rawget(L, 1) == LUA_TTABLE) {
		struct mh_config_src src = {ld->path, ld->text, ld->textlen};
		mh_config_conds_want(ld->cs, L, -1, hub->nchildren - 1,
		                     mh_config_key_line(&src, line, "when"));
	}
	return 0;
}

/* Names show up in logs, statistics labels and --show-config: keep them plain. */
static int good_name(const char *s, size_t n)
{
	if (n == 0 || n > NAME_MAX_LEN || strlen(s) != n)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@+") ==
	       n;
}

/* milter "name" and policy "name": declare the name, return its block function. */
static int declare_child(lua_State *L, int policy)
{
	struct loader *ld = upvalue_loader(L);
	const char *what = policy ? "policy" : "milter";
	int line = caller_line(L);
	if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING)
		return fail(L, ld, line, "%s: expected a name, as in %s \"name\" { socket = ... }",
		            what, what);
	size_t n;
	const char *name = lua_tolstring(L, 1, &n);
	if (!good_name(name, n))
		return fail(L, ld, line, "%s \"%.*s\": a name is 1 to %d letters, digits or ._-:@+",
		            what, (int)(n > 80 ? 80 : n), name, NAME_MAX_LEN);
	/* One namespace: milters and policies share the chain and the statistics. */
	for (size_t i = 0; i < ld->nnames; i++)
		if (strcmp(ld->names[i].name, name) == 0)
			return fail(L, ld, line, "%s \"%s\": duplicate name (first at line %d)",
			            what, name, ld->names[i].line);
	if (ld->nnames == ld->capnames) {
		ld->capnames = ld->capnames ? 2 * ld->capnames : 8;
		ld->names = mh_xrealloc(ld->names, ld->capnames * sizeof(*ld->names));
	}
	ld->names[ld->nnames] = (struct declared){mh_xstrdup(name), line, 0, policy};
	lua_pushlightuserdata(L, ld->cs);
	lua_pushinteger(L, (lua_Integer)ld->nnames++);
	lua_pushcclosure(L, l_milter_block, 2);
	return 1;
}

static int l_milter(lua_State *L)
{
	return declare_child(L, 0);
}

static int l_policy(lua_State *L)
{
	return declare_child(L, 1);
}

static int l_condition_block(lua_State *L)
{
	struct loader *ld = upvalue_loader(L);
	const char *name = lua_tostring(L, lua_upvalueindex(2));
	int line = caller_line(L);
	if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TTABLE)
		return fail(L, ld, line,
		            "condition \"%s\": expected a table, as in condition \"%s\" "
		            "{ type = \"s25r\" }",
		            name, name);
	struct mh_config_src src = {ld->path, ld->text, ld->textlen};
	char err[1024];
	if (mh_config_conds_define(ld->cs, L, 1, name, line, &src, err, sizeof(err)) < 0)
		return fail(L, ld, FAIL_NAMED, "%s", err);
	return 0;
}

static int l_condition(lua_State *L)
{
	struct loader *ld = upvalue_loader(L);
	int line = caller_line(L);
	if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING)
		return fail(L, ld, line,
		            "condition: expected a name, as in condition \"name\" { ... }");
	size_t n;
	const char *name = lua_tolstring(L, 1, &n);
	if (!good_name(name, n))
		return fail(L, ld, line,
		            "condition \"%.*s\": a name is 1 to %d letters, digits or ._-:@+",
		            (int)(n > 80 ? 80 : n), name, NAME_MAX_LEN);
	lua_pushlightuserdata(L, ld->cs);
	lua_pushvalue(L, 1);
	lua_pushcclosure(L, l_condition_block, 2);
	return 1;
}

/* ------------------------------------------------------------------ sandbox */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct mh_config_conds *ld = ud; /* outlives the loader with a Lua condition */
	size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
	if (nsize == 0) {
		free(ptr);
		ld->mem -= old;
		return NULL;
	}
	if (nsize > old && ld->mem + (nsize - old) > MEMORY_LIMIT)
		return NULL; /* Lua raises "not enough memory" */
	void *p = realloc(ptr, nsize);
	if (p != NULL)
		ld->mem = ld->mem - old + nsize;
	return p;
}

static void l_hook(lua_State *L, lua_Debug *ar)
{
	void *ud;
	lua_getallocf(L, &ud);
	struct loader *ld = ((struct mh_config_conds *)ud)->loader;
	if (++ld->steps < INSTRUCTION_LIMIT)
		return;
	int line = lua_getinfo(L, "l", ar) ? ar->currentline : 0;
	fail(L, ld, line, "the configuration runs too long (an endless loop?)");
}

/* print() goes to stderr: stdout belongs to --show-config and --check-config. */
static int l_print(lua_State *L)
{
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		size_t len;
		const char *s = luaL_tolstring(L, i, &len); /* may call __tostring, may raise */
		if (i > 1)
			fputc('\t', stderr);
		fwrite(s, 1, len, stderr);
		lua_pop(L, 1);
	}
	fputc('\n', stderr);
	return 0;
}

static void open_sandbox(lua_State *L, struct loader *ld)
{
	static const luaL_Reg libs[] = {
	    {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
	    {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
	    {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
	};
	for (const luaL_Reg *lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	static const char *const drop[] = {"dofile", "loadfile", "load", "collectgarbage", NULL};
	for (const char *const *g = drop; *g; g++) {
		lua_pushnil(L);
		lua_setglobal(L, *g);
	}
	lua_getglobal(L, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump"); /* bytecode is not for configs */
	lua_pop(L, 1);
	lua_pushcfunction(L, l_print);
	lua_setglobal(L, "print");

	/* os: only what reads the clock or the environment. */
	static const char *const os_keep[] = {"getenv", "time", "clock", "date", "difftime", NULL};
	lua_pushcfunction(L, luaopen_os);
	lua_call(L, 0, 1);
	lua_newtable(L);
	for (const char *const *k = os_keep; *k; k++) {
		lua_getfield(L, -2, *k);
		lua_setfield(L, -2, *k);
	}
	lua_setglobal(L, LUA_OSLIBNAME);
	lua_pop(L, 1);

	lua_pushlightuserdata(L, ld->cs);
	lua_pushcclosure(L, l_manager, 1);
	lua_setglobal(L, "manager");
	lua_pushlightuserdata(L, ld->cs);
	lua_pushcclosure(L, l_milter, 1);
	lua_setglobal(L, "milter");
	lua_pushlightuserdata(L, ld->cs);
	lua_pushcclosure(L, l_policy, 1);
	lua_setglobal(L, "policy");
	lua_pushlightuserdata(L, ld->cs);
	lua_pushcclosure(L, l_condition, 1);
	lua_setglobal(L, "condition");
}

/* ------------------------------------------------------------------ loading */

/* Whole-config checks, once every block has been seen. */
static void check_whole(lua_State *L, struct loader *ld)
{
	for (size_t i = 0; i < ld->nnames; i++)
		if (!ld->names[i].done)
			fail(L, ld, ld->names[i].line,
			     "%s \"%s\": no settings (write %s \"%s\" { socket = ... })",
			     ld->names[i].policy ? "policy" : "milter", ld->names[i].name,
			     ld->names[i].policy ? "policy" : "milter", ld->names[i].name);
	const struct mh_hub_conf *hub = &ld->c->hub;
	for (size_t i = 0; i < hub->nchildren; i++) {
		if (strcmp(hub->children[i].sock.text, ld->c->listen.text) != 0)
			continue;
		int line = 0;
		for (size_t j = 0; j < ld->nnames; j++)
			if (strcmp(ld->names[j].name, hub->children[i].name) == 0)
				line = ld->names[j].line;
		fail(L, ld, line,
		     "milter \"%s\": key 'socket': %s is the manager's own listen socket",
		     hub->children[i].name, hub->children[i].sock.text);
	}
	char err[1024];
	if (mh_config_conds_resolve(ld->cs, hub->children, ld->path, err, sizeof(err)) < 0)
		fail(L, ld, FAIL_NAMED, "%s", err);
}

/* Runs under lua_pcall (every Lua error lands there): arg 1 the loader. */
static int load_protected(lua_State *L)
{
	struct loader *ld = lua_touserdata(L, 1);
	open_sandbox(L, ld);
	if (luaL_loadbufferx(L, ld->text, ld->textlen, "=" CHUNK_TOKEN, "t") != LUA_OK)
		return lua_error(L);
	lua_sethook(L, l_hook, LUA_MASKCOUNT, INSTRUCTION_STEP);
	lua_call(L, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (ld->first_error) /* raised, then caught by the config's own pcall */
		return lua_error(L);
	check_whole(L, ld);
	return 0;
}

static int read_file(const char *path, struct mh_buf *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return mh_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		mh_buf_append(out, chunk, n);
		if (mh_buf_size(out) > FILE_LIMIT) {
			fclose(f);
			return mh_errf(err, errlen, "%s: larger than %zu bytes", path, FILE_LIMIT);
		}
	}
	int bad = ferror(f);
	int saved = errno;
	fclose(f);
	if (bad)
		return mh_errf(err, errlen, "%s: cannot read: %s", path, strerror(saved));
	return 0;
}

/* Lua's message for a failed run, with the chunk token replaced by the path. */
static void lua_message(lua_State *L, int rc, const struct loader *ld, char *err, size_t errlen)
{
	if (ld->first_error) {
		mh_errf(err, errlen, "%s", ld->first_error);
		return;
	}
	if (rc == LUA_ERRMEM) {
		mh_errf(err, errlen, "%s: the configuration needs more than %zu MiB of memory",
		        ld->path, MEMORY_LIMIT >> 20);
		return;
	}
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (msg == NULL)
		mh_errf(err, errlen, "%s: error (the error object is a %s value)", ld->path,
		        luaL_typename(L, -1));
	else if (strncmp(msg, CHUNK_TOKEN ":", strlen(CHUNK_TOKEN) + 1) == 0)
		mh_errf(err, errlen, "%s:%s", ld->path, msg + strlen(CHUNK_TOKEN) + 1);
	else
		mh_errf(err, errlen, "%s: %s", ld->path, msg);
}

int mh_config_load(const char *path, struct mh_config *c, char *err, size_t errlen)
{
	struct mh_buf text = MH_BUF_INIT;
	if (read_file(path, &text, err, errlen) < 0) {
		mh_buf_free(&text);
		return -1;
	}
	struct mh_config tmp;
	mh_config_defaults(&tmp);
	tmp.conds = mh_config_conds_new();
	struct loader ld = {.path = path,
	                    .cs = tmp.conds,
	                    .c = &tmp,
	                    .text = text.data ? (const char *)mh_buf_head(&text) : "",
	                    .textlen = mh_buf_size(&text)};

	int rc;
	tmp.conds->loader = &ld;
	lua_State *L = lua_newstate(l_alloc, tmp.conds);
	tmp.conds->L = L; /* closed by mh_config_conds_free: after the conditions */
	if (L == NULL) {
		rc = mh_errf(err, errlen, "%s: cannot create a Lua state", path);
	} else {
		lua_pushcfunction(L, load_protected);
		lua_pushlightuserdata(L, &ld);
		int lrc = lua_pcall(L, 1, 0, 0);
		if (lrc != LUA_OK) {
			lua_message(L, lrc, &ld, err, errlen);
			rc = -1;
		} else {
			rc = 0;
		}
		lua_settop(L, 0);
		if (!mh_config_conds_need_lua(tmp.conds)) {
			lua_close(L);
			tmp.conds->L = NULL;
		}
	}
	tmp.conds->loader = NULL; /* manager/milter/condition refuse from now on */
	mh_buf_free(&text);
	for (size_t i = 0; i < ld.nnames; i++)
		free(ld.names[i].name);
	free(ld.names);
	free(ld.first_error);
	if (rc < 0) {
		mh_config_free(&tmp);
		return -1;
	}
	tmp.path = mh_xstrdup(path);
	tmp.hub.tmpdir = tmp.tmpdir;
	*c = tmp;
	return 0;
}

/* --------------------------------------------------------------------- show */

void mh_config_show(const struct mh_config *c, FILE *out)
{
	fprintf(out, "-- milterhub configuration from %s, every default filled in\n",
	        c->path ? c->path : "the built-in defaults");
	fputs("manager {\n", out);
	mh_config_show_block(out, c, mh_config_manager_keys);
	fputs("}\n", out);
	mh_config_conds_show(c->conds, out);
	if (c->hub.nchildren == 0)
		fputs("-- no milter blocks: every session gets the manager's fallback\n", out);
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		const struct mh_child_conf *cc = &c->hub.children[i];
		fputs(cc->kind == MH_CHILD_POLICY ? "\npolicy " : "\nmilter ", out);
		mh_config_show_string(out, cc->name);
		fputs(" {\n", out);
		mh_config_show_block(out, cc,
		                     cc->kind == MH_CHILD_POLICY ? mh_config_policy_keys
		                                                 : mh_config_milter_keys);
		fputs("}\n", out);
	}
}
