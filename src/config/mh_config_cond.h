/*
 * mh_config_cond - the `condition` blocks of milterhub.lua and the `when`
 * lists of milter blocks (design §2.7, §4); internal to src/config.
 *
 *   condition "grey-s25r" { type = "s25r", whitelist = { "example.com" } }
 *   condition "s25r" { ipv4_only = false }  -- type defaults to the name
 *   condition "mine" { connect = function(s) ... end }  -- Lua (mh_lua_cond)
 *   milter "greylist" { socket = ..., when = { "grey-s25r", "unauthenticated" } }
 *
 * A struct mh_config_conds holds every condition the configuration made
 * (named ones, and built-ins a `when` used without a block: created with
 * no options on first use, then shared) and the Lua state, which stays
 * open after loading while a Lua condition needs it. The config owns it
 * (struct mh_config.conds); the children's `when` arrays borrow from it.
 */
#ifndef MH_CONFIG_COND_H
#define MH_CONFIG_COND_H

#include <lua.h>
#include <stddef.h>
#include <stdio.h>

#include "child/mh_child.h"

struct cond_def;
struct pending_when;

struct mh_config_conds {
	lua_State *L; /* the config's state; NULL once closed */
	size_t mem; /* bytes L holds (its allocator counts them) */
	void *loader; /* mh_config.c's loader while loading, else NULL */
	struct cond_def *defs; /* in definition order; implicit built-ins last */
	size_t ndefs, capdefs;
	struct pending_when *pending; /* `when` lists, resolved when loading ends */
	size_t npending, cappending;
};

/* The config's source, for errors naming the line of a key. */
struct mh_config_src {
	const char *file;
	const char *text;
	size_t len;
};

struct mh_config_conds *mh_config_conds_new(void);
/* Free every condition, close the Lua state, free cs. NULL is a no-op. */
void mh_config_conds_free(struct mh_config_conds *cs);
/* Does a Lua condition need the state after loading? */
int mh_config_conds_need_lua(const struct mh_config_conds *cs);

/*
 * Define condition name (block at line) from the table at idx. Runs in a
 * protected Lua call; raises nothing but a memory error. Returns 0, or
 * -1 with a complete "FILE:LINE: condition \"x\": ..." message in err.
 */
int mh_config_conds_define(struct mh_config_conds *cs, lua_State *L, int idx, const char *name,
                           int line, const struct mh_config_src *src, char *err, size_t errlen);
/* Remember the `when` list (a table of strings at idx) of child number child. */
void mh_config_conds_want(struct mh_config_conds *cs, lua_State *L, int idx, size_t child,
                          int line);
/*
 * Resolve every remembered `when` list into children[i].when (an owned
 * array of borrowed conditions; free it with free()). Returns 0, or -1
 * with "FILE:LINE: milter \"x\": key 'when': unknown condition 'y' ...".
 */
int mh_config_conds_resolve(struct mh_config_conds *cs, struct mh_child_conf *children,
                            const char *file, char *err, size_t errlen);

/* Print every condition as a block that loads back (Lua ones as a commented stub). */
void mh_config_conds_show(const struct mh_config_conds *cs, FILE *out);
/* Print a `when` list: { "a", "b" }. */
void mh_config_show_when(FILE *out, struct mh_cond *const *when, size_t n);

/*
 * The line of `key = ...` (or ["key"] = ...) at or after line from in
 * text, within the block; from when not found (Lua keeps no line per
 * table field, so this reads the source).
 */
int mh_config_key_line(const struct mh_config_src *src, int from, const char *key);

#endif
