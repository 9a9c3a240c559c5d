/*
 * NAME
 *	mh_lua_cond 3
 * SUMMARY
 *	custom applicable conditions in Lua: stage functions called by eval
 * SYNOPSIS
 *	#include "config/mh_lua_cond.h"
 *
 *	struct mh_cond *mh_lua_cond_new(lua_State *L, int idx,
 *			const char *name, const char *file);
 *	void	mh_lua_cond_free(struct mh_cond *c);
 * DESCRIPTION
 *	A Lua condition has one function per stage it decides at:
 *	    condition "big-senders" {
 *	        connect = function(s) if s.client_name:match("%.example%.com$")
 *	                              then return false end end,
 *	        rcpt = function(s) return s.recipient:match("@lists%.") ~= nil end,
 *	    }
 *	At a stage with a function, eval calls it with the session object s
 *	and maps its answer: true = applies, false = not applicable, nil
 *	(or nothing) = undecided, ask again at the next stage. A stage
 *	without a function is undecided. The hub stops asking once the
 *	condition decided.
 *
 *	The session object s (a userdata valid during its call only; using
 *	one kept from an earlier call raises an error) reads, lazily:
 *	    s.stage              "connect" "helo" "mail" "rcpt" "data"
 *	                         "header" "eoh" "eom"
 *	    s.client_name        the MTA's client host name, "[192.0.2.1]"
 *	                         when it knows none
 *	    s.client_address     textual address, nil for unix/unknown
 *	    s.helo, s.sender     nil before HELO / MAIL (sender keeps its <>)
 *	    s.recipient          the recipient being decided (at rcpt only)
 *	    s.recipients         a fresh table of the recipients accepted so far
 *	    s.header_name, s.header_value   the header being sent (at header)
 *	    s.concurrent_sessions           sessions in progress in this process
 *	    s.now                the clock, seconds since the epoch
 *	    s:macro(name)        an MTA macro ("i" and "{i}" alike), or nil
 *	    s:set_macro(name, value)  a macro sent to this child only
 *	    s.headers            a fresh array of { name = ..., value = ... }:
 *	                         the message's headers so far as the hub's
 *	                         working copy holds them (earlier children's
 *	                         edits applied, the MTA's hidden ones left out,
 *	                         value without its one leading space); empty
 *	                         before content
 *	    s:result(child)      that child's latest answer in this transaction
 *	                         (else at connect/helo) as a status name
 *	                         ("continue" "accept" "reject" "tempfail"
 *	                         "discard" "skip"), nil when it has none, was
 *	                         left out by its conditions, or is unknown
 *	    s.results            a fresh table child name -> s:result(name), for
 *	                         the children that have one
 *	Any other key reads nil; s cannot be written to. Children answer an
 *	envelope stage in parallel: at mail and rcpt the others' answers at
 *	that stage are not known yet (s:result gives their earlier one); in
 *	the content chain a child is asked after the ones before it answered.
 *	A ctx without the headers/child_result/children callbacks gives an
 *	empty table and nil.
 *
 *	The functions run in the configuration's sandbox (see mh_config),
 *	with its globals, upvalues and memory cap; manager/milter/condition
 *	raise an error once loading is over.
 * DIAGNOSTICS
 *	A failing call never fails the session. A Lua error, an answer that
 *	is not true/false/nil, or a call running more than
 *	MH_LUA_COND_INSTRUCTIONS VM instructions (an endless loop; a
 *	Lua-level pcall cannot catch it twice) is logged at warn level as
 *	    condition NAME: lua error: FILE:LINE: message
 *	and the condition counts as APPLYING: a broken custom rule must not
 *	silently drop a countermeasure. (Time spent inside one C library
 *	call, such as a pathological string.find pattern, is not counted.)
 */
#include "config/mh_lua_cond.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

#include <assert.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_MT "milterhub.session"

struct lua_cond {
	lua_State *L; /* the configuration's state (not owned) */
	int ref; /* registry: table stage + 1 -> function */
	unsigned stages; /* bit 1 << stage: has a function */
	char *file; /* the config, for messages */
};

static const char *const stage_names[MH_COND_STAGE_COUNT] = {
    "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "eom",
};

/*
 * The call in progress. One state is used by one thread (mh_lua_cond.h);
 * the serial tells a stale session object from the current one.
 */
static const struct mh_cond_ctx *current_ctx;
static unsigned long current_serial;

int mh_lua_cond_stage_of(const char *key)
{
	for (int i = 0; i < MH_COND_STAGE_COUNT; i++)
		if (strcmp(key, stage_names[i]) == 0)
			return i;
	return -1;
}

const char *mh_lua_cond_stage_name(enum mh_cond_stage stage)
{
	return (unsigned)stage < MH_COND_STAGE_COUNT ? stage_names[stage] : "?";
}

/* ------------------------------------------------------------ session object */

/* The ctx behind the session object at index 1, or a Lua error. */
static const struct mh_cond_ctx *session_ctx(lua_State *L)
{
	const unsigned long *serial = luaL_checkudata(L, 1, SESSION_MT);
	if (current_ctx == NULL || *serial != current_serial)
		luaL_error(L, "the session object is valid only during its condition call");
	return current_ctx;
}

static void push_opt_string(lua_State *L, const char *s)
{
	if (s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
}

/* A string argument without NUL bytes (they cannot travel in a macro). */
static const char *plain_arg(lua_State *L, int arg)
{
	size_t n;
	const char *s = luaL_checklstring(L, arg, &n);
	if (strlen(s) != n)
		luaL_argerror(L, arg, "contains a NUL byte");
	return s;
}

static int s_macro(lua_State *L)
{
	const struct mh_cond_ctx *ctx = session_ctx(L);
	const char *name = plain_arg(L, 2);
	push_opt_string(L, ctx->macro ? ctx->macro(ctx, name) : NULL);
	return 1;
}

static int s_set_macro(lua_State *L)
{
	const struct mh_cond_ctx *ctx = session_ctx(L);
	const char *name = plain_arg(L, 2);
	const char *value = plain_arg(L, 3);
	if (name[0] == '\0')
		luaL_argerror(L, 2, "empty macro name");
	if (ctx->set_macro)
		ctx->set_macro(ctx, name, value); /* borrowed for the call: the hub copies */
	return 0;
}

/* s:result(child_name): that child's latest answer, or nil. */
static int s_result(lua_State *L)
{
	const struct mh_cond_ctx *ctx = session_ctx(L);
	const char *name = plain_arg(L, 2);
	push_opt_string(L, ctx->child_result ? ctx->child_result(ctx, name) : NULL);
	return 1;
}

/* s.headers: a fresh array of { name = ..., value = ... }, in order. */
static void push_headers(lua_State *L, const struct mh_cond_ctx *ctx)
{
	const char *n0 = NULL, *v0 = NULL;
	size_t n = ctx->headers ? ctx->headers(ctx, 0, &n0, &v0) : 0;
	lua_createtable(L, n < 1000 ? (int)n : 1000, 0);
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL, *value = NULL;
		if (ctx->headers(ctx, i, &name, &value) <= i || name == NULL)
			break;
		lua_createtable(L, 0, 2);
		lua_pushstring(L, name);
		lua_setfield(L, -2, "name");
		lua_pushstring(L, value != NULL ? value : "");
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* s.results: a fresh table child name -> status, for children with one. */
static void push_results(lua_State *L, const struct mh_cond_ctx *ctx)
{
	const char *n0 = NULL;
	size_t n = ctx->children && ctx->child_result ? ctx->children(ctx, 0, &n0) : 0;
	lua_createtable(L, 0, n < 1000 ? (int)n : 1000);
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL, *st;
		if (ctx->children(ctx, i, &name) <= i || name == NULL)
			break;
		st = ctx->child_result(ctx, name);
		if (st == NULL)
			continue;
		lua_pushstring(L, st);
		lua_setfield(L, -2, name);
	}
}

static int s_index(lua_State *L)
{
	const struct mh_cond_ctx *ctx = session_ctx(L);
	const char *key = lua_tostring(L, 2);
	if (key == NULL || lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
	} else if (strcmp(key, "client_name") == 0) {
		push_opt_string(L, ctx->client_name);
	} else if (strcmp(key, "client_address") == 0) {
		push_opt_string(L, ctx->client_addr);
	} else if (strcmp(key, "helo") == 0) {
		push_opt_string(L, ctx->helo);
	} else if (strcmp(key, "sender") == 0) {
		push_opt_string(L, ctx->sender);
	} else if (strcmp(key, "recipient") == 0) {
		push_opt_string(L, ctx->stage == MH_COND_RCPT ? ctx->rcpt : NULL);
	} else if (strcmp(key, "recipients") == 0) {
		lua_createtable(L, ctx->nrcpts < 1000 ? (int)ctx->nrcpts : 1000, 0);
		for (size_t i = 0; i < ctx->nrcpts; i++) {
			lua_pushstring(L, ctx->rcpts[i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
	} else if (strcmp(key, "header_name") == 0) {
		push_opt_string(L, ctx->stage == MH_COND_HEADER ? ctx->header_name : NULL);
	} else if (strcmp(key, "header_value") == 0) {
		push_opt_string(L, ctx->stage == MH_COND_HEADER ? ctx->header_value : NULL);
	} else if (strcmp(key, "stage") == 0) {
		lua_pushstring(L, mh_lua_cond_stage_name(ctx->stage));
	} else if (strcmp(key, "concurrent_sessions") == 0) {
		lua_pushinteger(L, (lua_Integer)ctx->concurrent_sessions);
	} else if (strcmp(key, "now") == 0) {
		lua_pushinteger(L, (lua_Integer)ctx->now);
	} else if (strcmp(key, "macro") == 0) {
		lua_pushcfunction(L, s_macro);
	} else if (strcmp(key, "set_macro") == 0) {
		lua_pushcfunction(L, s_set_macro);
	} else if (strcmp(key, "headers") == 0) {
		push_headers(L, ctx);
	} else if (strcmp(key, "result") == 0) {
		lua_pushcfunction(L, s_result);
	} else if (strcmp(key, "results") == 0) {
		push_results(L, ctx);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

static int s_newindex(lua_State *L)
{
	return luaL_error(L, "the session object is read-only");
}

static int s_tostring(lua_State *L)
{
	lua_pushliteral(L, "milterhub session");
	return 1;
}

static void push_session(lua_State *L)
{
	unsigned long *serial = lua_newuserdatauv(L, sizeof(*serial), 0);
	*serial = current_serial;
	if (luaL_newmetatable(L, SESSION_MT)) {
		static const luaL_Reg mt[] = {
		    {"__index", s_index},
		    {"__newindex", s_newindex},
		    {"__tostring", s_tostring},
		    {NULL, NULL},
		};
		luaL_setfuncs(L, mt, 0);
		lua_pushboolean(L, 0);
		lua_setfield(L, -2, "__metatable"); /* getmetatable(s) cannot reach it */
	}
	lua_setmetatable(L, -2);
}

/* -------------------------------------------------------------------- eval */

struct call {
	const struct lua_cond *lc;
	enum mh_cond_stage stage;
	enum mh_cond_verdict verdict;
};

/* Count hook: the call ran out of instructions. */
static void limit_hook(lua_State *L, lua_Debug *ar)
{
	/* From now on every instruction fails, so a Lua pcall cannot swallow it. */
	lua_sethook(L, limit_hook, LUA_MASKCOUNT, 1);
	luaL_error(L, "ran more than %d instructions (an endless loop?)", MH_LUA_COND_INSTRUCTIONS);
}

/* Runs under lua_pcall: arg 1 the struct call. */
static int protected_eval(lua_State *L)
{
	struct call *call = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, call->lc->ref);
	lua_rawgeti(L, -1, (lua_Integer)call->stage + 1);
	push_session(L);
	lua_call(L, 1, 1);
	switch (lua_type(L, -1)) {
	case LUA_TBOOLEAN:
		call->verdict = lua_toboolean(L, -1) ? MH_COND_APPLIES : MH_COND_NOT_APPLICABLE;
		return 0;
	case LUA_TNIL:
		call->verdict = MH_COND_UNDECIDED;
		return 0;
	default:
		return luaL_error(L, "%s returned a %s (expected true, false or nil)",
		                  stage_names[call->stage], luaL_typename(L, -1));
	}
}

static void log_failure(const struct mh_cond *c, const struct lua_cond *lc, lua_State *L)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	size_t tok = strlen(MH_CONFIG_CHUNK_TOKEN);
	if (msg == NULL)
		mh_warn(0, "condition %s: lua error: (the error object is a %s value)", c->name,
		        luaL_typename(L, -1));
	else if (strncmp(msg, MH_CONFIG_CHUNK_TOKEN ":", tok + 1) == 0)
		mh_warn(0, "condition %s: lua error: %s:%s", c->name, lc->file, msg + tok + 1);
	else
		mh_warn(0, "condition %s: lua error: %s", c->name, msg);
}

static enum mh_cond_verdict lua_cond_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct lua_cond *lc = c->impl;
	assert((unsigned)ctx->stage < MH_COND_STAGE_COUNT);
	if (!(lc->stages & (1u << ctx->stage)))
		return MH_COND_UNDECIDED;
	lua_State *L = lc->L;
	int top = lua_gettop(L);
	if (!lua_checkstack(L, 4)) {
		mh_warn(0, "condition %s: lua error: stack overflow", c->name);
		return MH_COND_APPLIES;
	}
	/* Save and restore: safe even if a hub callback evaluated another condition. */
	const struct mh_cond_ctx *saved_ctx = current_ctx;
	unsigned long saved_serial = current_serial;
	static unsigned long serials;
	current_ctx = ctx;
	current_serial = ++serials;

	struct call call = {lc, ctx->stage, MH_COND_APPLIES};
	lua_pushcfunction(L, protected_eval); /* a light C function: no allocation */
	lua_pushlightuserdata(L, &call);
	lua_sethook(L, limit_hook, LUA_MASKCOUNT, MH_LUA_COND_INSTRUCTIONS);
	int rc = lua_pcall(L, 1, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (rc != LUA_OK) {
		log_failure(c, lc, L);
		call.verdict = MH_COND_APPLIES; /* documented: an error applies the child */
	}
	lua_settop(L, top);
	current_ctx = saved_ctx;
	current_serial = saved_serial;
	return call.verdict;
}

static void lua_cond_free_impl(struct mh_cond *c)
{
	struct lua_cond *lc = c->impl;
	if (lc == NULL)
		return;
	/* The registry slot goes with the state, which the config closes next. */
	free(lc->file);
	free(lc);
	c->impl = NULL;
}

static const struct mh_cond_ops lua_cond_ops = {"lua", lua_cond_eval, lua_cond_free_impl};

/* ------------------------------------------------------------------- create */

struct mh_cond *mh_lua_cond_new(lua_State *L, int idx, const char *name, const char *file)
{
	idx = lua_absindex(L, idx);
	unsigned stages = 0;
	/* Lua side first: a memory error raised here leaks nothing. */
	lua_createtable(L, MH_COND_STAGE_COUNT, 0);
	for (int i = 0; i < MH_COND_STAGE_COUNT; i++) {
		lua_pushstring(L, stage_names[i]);
		if (lua_rawget(L, idx) == LUA_TFUNCTION) {
			lua_rawseti(L, -2, i + 1);
			stages |= 1u << i;
		} else {
			lua_pop(L, 1);
		}
	}
	int ref = luaL_ref(L, LUA_REGISTRYINDEX);

	struct lua_cond *lc = mh_xmalloc(sizeof(*lc));
	*lc = (struct lua_cond){L, ref, stages, mh_xstrdup(file)};
	struct mh_cond *c = mh_xmalloc(sizeof(*c));
	*c = (struct mh_cond){&lua_cond_ops, mh_xstrdup(name), lc};
	return c;
}

unsigned mh_lua_cond_stages(const struct mh_cond *c)
{
	if (c == NULL || c->ops != &lua_cond_ops)
		return 0;
	return ((const struct lua_cond *)c->impl)->stages;
}

void mh_lua_cond_free(struct mh_cond *c)
{
	if (c == NULL)
		return;
	lua_cond_free_impl(c);
	free(c->name);
	free(c);
}
