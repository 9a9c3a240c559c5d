/*
 * mh_config_keys - the keys of milterhub.lua as data (internal to src/config).
 *
 * Every key of a `manager { }` or `milter "name" { }` block is one row of
 * a table: its name, its kind (how a Lua value becomes a C field, and how
 * the field is printed back by --show-config) and where the field lives
 * (offsetof into struct mh_config for the manager, struct mh_child_conf
 * for a milter). Adding a key later (issue 4: when, workers, statistics)
 * is one row here plus the field; the loader and --show-config need no
 * other change. A kind that needs a nested table (timeouts = { ... })
 * points at a sub-table of rows.
 *
 * Only mh_config.c and mh_config_keys.c include this; nothing outside
 * src/config sees Lua.
 */
#ifndef MH_CONFIG_KEYS_H
#define MH_CONFIG_KEYS_H

#include <lua.h>
#include <stddef.h>
#include <stdio.h>

struct mh_config_key;

struct mh_config_kind {
	const char *what; /* "a socket spec string", for type errors */
	/*
	 * Convert the Lua value at stack index idx into the field(s) of
	 * base. Returns 0, or -1 with a reason in why ("must be positive,
	 * got -1"); the caller prefixes file, line, block and key. May
	 * allocate into base (owned strings): on error base stays freeable.
	 * Must not raise a Lua error (raw access only, no metamethods).
	 */
	int (*parse)(lua_State *L, int idx, void *base, const struct mh_config_key *k,
	             const char *keypath, char *why, size_t whylen);
	/* Print the value as Lua source ("\"accept\"", "5", "{ eom = 297 }"). */
	void (*show)(FILE *out, const void *base, const struct mh_config_key *k);
};

struct mh_config_key {
	const char *name;
	const struct mh_config_kind *kind;
	size_t off; /* the field in the block's struct */
	size_t aux; /* second field (a spec's text), kind-specific */
	double min, max; /* numeric range, kind-specific */
	const struct mh_config_key *sub; /* nested rows, NULL-name terminated */
	const char *note; /* shown as a comment when the field is unset */
};

/* The rows, each array terminated by a row with name == NULL. */
extern const struct mh_config_key mh_config_manager_keys[]; /* base: struct mh_config */
extern const struct mh_config_key mh_config_milter_keys[]; /* base: struct mh_child_conf */
extern const struct mh_config_key mh_config_policy_keys[]; /* base: struct mh_child_conf */

/*
 * Parse a whole block table (stack index idx) against rows: unknown keys
 * first (alphabetically first reported, with a "did you mean" hint), then
 * each present row in table order. Returns 0 or -1 with why holding
 * "unknown key 'x'" or "key 'x': reason". prefix is prepended to key
 * names ("timeouts.").
 */
int mh_config_parse_block(lua_State *L, int idx, void *base, const struct mh_config_key *rows,
                          const char *prefix, char *why, size_t whylen);

/* Print "\tname = value,\n" for every row (a comment for unset optional ones). */
void mh_config_show_block(FILE *out, const void *base, const struct mh_config_key *rows);

/* Print s as a Lua string literal. */
void mh_config_show_string(FILE *out, const char *s);

/* Parse "0660" / 432 into a mode; "4M" / "512K" / 4096 into bytes. For tests too. */
int mh_config_parse_mode(const char *s, unsigned *out);
/* Is the table at idx a plain list (keys 1..n, nothing else)? Sets *n. */
int mh_config_is_list(lua_State *L, int idx, size_t *n);
int mh_config_parse_bytes(const char *s, size_t *out);

#endif
