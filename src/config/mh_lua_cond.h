/*
 * mh_lua_cond - custom applicable conditions written in Lua (design §2.7),
 * as an mh_cond whose eval calls into the configuration's Lua state.
 *
 *   condition "name" { connect = function(s) ... end, rcpt = ..., eom = ... }
 *
 * Internal to src/config (design §1: nothing below the daemon knows Lua;
 * the hub only sees struct mh_cond). The Lua state belongs to the
 * configuration, which keeps it open after loading while a Lua condition
 * exists, and closes it after freeing the conditions (mh_config_free).
 * One state is used by one thread: a worker evaluates its conditions in
 * its own event loop (after fork each worker has its own copy).
 */
#ifndef MH_LUA_COND_H
#define MH_LUA_COND_H

#include <lua.h>
#include <stddef.h>

#include "conditions/mh_cond.h"

/* Lua names the config chunk this way in its messages; the real path replaces it. */
#define MH_CONFIG_CHUNK_TOKEN "@milterhub-config@"
/* Each call of a stage function may run this many VM instructions. */
#define MH_LUA_COND_INSTRUCTIONS 1000000

/* The stage a key of a condition block names ("connect" ... "eom"), or -1. */
int mh_lua_cond_stage_of(const char *key);
/* "connect" ... "eom". */
const char *mh_lua_cond_stage_name(enum mh_cond_stage stage);

/*
 * Make a Lua condition named name from the functions of the table at idx
 * (keys: stage names; the caller has checked them). Must run inside a
 * protected Lua call (it may raise a memory error before allocating
 * anything in C). file names the config in log lines. Never fails.
 */
struct mh_cond *mh_lua_cond_new(lua_State *L, int idx, const char *name, const char *file);
/* The stages a Lua condition has a function for (bit 1 << stage), 0 if not a Lua one. */
unsigned mh_lua_cond_stages(const struct mh_cond *c);
/* Free a condition made by mh_lua_cond_new (name, impl, struct); NULL is a no-op. */
void mh_lua_cond_free(struct mh_cond *c);

#endif
