/*
 * NAME
 *	mh_config_cond 3
 * SUMMARY
 *	condition blocks and `when` lists of milterhub.lua
 * SYNOPSIS
 *	#include "config/mh_config_cond.h"
 * DESCRIPTION
 *	condition "NAME" { ... } is one of:
 *	  - a built-in instance: `type` names a built-in (mh_cond_builtin_new),
 *	    or is left out when NAME is itself a built-in type. Every other
 *	    key is an option: a string, a number, a boolean, or a list of
 *	    strings, converted to struct mh_cond_opts (numbers as Lua prints
 *	    them, booleans as "true"/"false"), keys in alphabetical order,
 *	    each with the line of its `key =` in the source. The built-in
 *	    validates its options; its errors are passed through unchanged.
 *	  - a Lua condition: no `type`, one function or more among connect,
 *	    helo, mail, rcpt, data, header, eoh, eom (mh_lua_cond), and
 *	    nothing else.
 *	A name in a `when` list is a condition block's NAME, wherever the
 *	block stands in the file, or a built-in type, created with no
 *	options on first use and shared by every milter naming it.
 *
 *	--show-config prints each condition as a block that loads back:
 *	built-ins with the options as given (defaults are the built-in's
 *	own and are not known here), built-ins named only in a `when` list
 *	as a block with just their type.
 *	Lua functions cannot be printed: a Lua condition becomes a comment
 *	naming its file and line, followed by a stub with the same stages
 *	that decides nothing (the milter applies), so the output loads.
 * DIAGNOSTICS
 *	FILE:LINE: condition "x": key 'type': 'sr25' is not a built-in
 *	condition type (s25r, remote-network, ...)
 *	FILE:LINE: condition "x": key 'whitelist': expected a string, a
 *	number, a boolean or a list of strings, got function
 *	FILE:LINE: condition "x": duplicate name (first at line N)
 *	FILE:LINE: milter "x": key 'when': unknown condition 'y' (...)
 */
#include "config/mh_config_cond.h"
#include "config/mh_config_keys.h"
#include "config/mh_lua_cond.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

enum opt_shape { SHAPE_STRING, SHAPE_NUMBER, SHAPE_BOOL, SHAPE_LIST };

struct cond_def {
	char *name;
	char *type; /* the built-in type; NULL for a Lua condition */
	int line; /* of the block; 0 for an implicit built-in */
	char *file;
	struct mh_cond_opt *opts; /* key and values owned (consts cast away on free) */
	enum opt_shape *shapes; /* how each option was written, for --show-config */
	size_t nopts;
	struct mh_cond *cond;
};

struct pending_when {
	size_t child;
	int line;
	char **names;
	size_t nnames;
};

static const char *const builtin_candidates[] = {
    "s25r",   "remote-network", "authenticated",     "unauthenticated", "trusted-sender",
    "stress", "no-stress",      "restrict-accounts", "schedule",        "dnsbl",
};

struct mh_config_conds *mh_config_conds_new(void)
{
	return mh_xcalloc(1, sizeof(struct mh_config_conds));
}

static void free_opts(struct mh_cond_opt *opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < opts[i].nvalues; j++)
			free((char *)opts[i].values[j]);
		free((void *)opts[i].values);
		free((char *)opts[i].key);
	}
	free(opts);
}

static void close_hook(lua_State *L, lua_Debug *ar)
{
	luaL_error(L, "stopped: the configuration is being freed");
}

void mh_config_conds_free(struct mh_config_conds *cs)
{
	if (cs == NULL)
		return;
	for (size_t i = 0; i < cs->ndefs; i++) {
		struct cond_def *d = &cs->defs[i];
		if (d->type == NULL)
			mh_lua_cond_free(d->cond);
		else if (d->cond)
			mh_cond_free(d->cond);
		free_opts(d->opts, d->nopts);
		free(d->shapes);
		free(d->name);
		free(d->type);
		free(d->file);
	}
	free(cs->defs);
	for (size_t i = 0; i < cs->npending; i++) {
		for (size_t j = 0; j < cs->pending[i].nnames; j++)
			free(cs->pending[i].names[j]);
		free(cs->pending[i].names);
	}
	free(cs->pending);
	if (cs->L) {
		/* A __gc finalizer runs at close: bound it like any other call. */
		lua_sethook(cs->L, close_hook, LUA_MASKCOUNT, MH_LUA_COND_INSTRUCTIONS);
		lua_close(cs->L);
	}
	free(cs);
}

int mh_config_conds_need_lua(const struct mh_config_conds *cs)
{
	for (size_t i = 0; cs && i < cs->ndefs; i++)
		if (cs->defs[i].type == NULL)
			return 1;
	return 0;
}

/* --------------------------------------------------------------- key lines */

static int is_ident(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_';
}

/* Does the text at p hold `key` then optional blanks and '=' (not '==')? */
static int key_assign_at(const char *p, const char *end, const char *key, size_t klen)
{
	if ((size_t)(end - p) < klen || memcmp(p, key, klen) != 0)
		return 0;
	p += klen;
	if (p < end && (*p == '"' || *p == '\''))
		p++, p += (p < end && *p == ']');
	else if (p < end && is_ident(*p))
		return 0;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p < end && *p == '=' && (p + 1 == end || p[1] != '=');
}

int mh_config_key_line(const struct mh_config_src *src, int from, const char *key)
{
	if (src == NULL || src->text == NULL || from <= 0)
		return from;
	const char *p = src->text, *end = src->text + src->len;
	int line = 1;
	for (; p < end && line < from; p++)
		line += *p == '\n';
	size_t klen = strlen(key);
	for (; p < end && line < from + 200; p++) {
		if (*p == '\n') {
			line++;
			continue;
		}
		if (p > src->text && (is_ident(p[-1]) || p[-1] == '.'))
			continue;
		if (key_assign_at(p, end, key, klen))
			return line;
	}
	return from;
}

/* ------------------------------------------------------------------ define */

static int stage_key(const char *key)
{
	return mh_lua_cond_stage_of(key);
}

static void builtin_list(char *buf, size_t len)
{
	buf[0] = '\0';
	size_t n = sizeof(builtin_candidates) / sizeof(builtin_candidates[0]);
	for (size_t i = 0; i < n; i++)
		if (mh_cond_builtin_known(builtin_candidates[i]))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? ", " : "",
			         builtin_candidates[i]);
}

static int by_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The table's string keys, sorted (Lua's order is random per run). -1 on a non-string key. */
static int sorted_keys(lua_State *L, int idx, char ***out, size_t *n)
{
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING) {
			lua_pop(L, 1);
			return -1;
		}
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			*out = mh_xrealloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = mh_xstrdup(lua_tostring(L, -1));
	}
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), by_key);
	return 0;
}

static void free_keys(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/* Convert the value at idx into o; 0, or -1 with a reason (o stays freeable). */
static int convert_option(lua_State *L, int idx, struct mh_cond_opt *o, enum opt_shape *shape,
                          char *why, size_t whylen)
{
	char num[64];
	const char *scalar = NULL;
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TSTRING: {
		size_t n;
		scalar = lua_tolstring(L, idx, &n);
		if (strlen(scalar) != n)
			return mh_errf(why, whylen, "contains a NUL byte");
		*shape = SHAPE_STRING;
		break;
	}
	case LUA_TNUMBER:
		/* Formatted here: lua_tostring would allocate, and may raise. */
		if (lua_isinteger(L, idx))
			snprintf(num, sizeof(num), LUA_INTEGER_FMT, lua_tointeger(L, idx));
		else
			snprintf(num, sizeof(num), "%.17g", (double)lua_tonumber(L, idx));
		scalar = num;
		*shape = SHAPE_NUMBER;
		break;
	case LUA_TBOOLEAN:
		scalar = lua_toboolean(L, idx) ? "true" : "false";
		*shape = SHAPE_BOOL;
		break;
	case LUA_TTABLE: {
		size_t n;
		if (!mh_config_is_list(L, idx, &n))
			return mh_errf(why, whylen,
			               "expected a list of strings, got a table with "
			               "named or sparse entries");
		char **vals = mh_xcalloc(n + 1, sizeof(*vals));
		o->values = (const char *const *)vals;
		for (size_t i = 0; i < n; i++) {
			int t = lua_rawgeti(L, idx, (lua_Integer)i + 1);
			size_t len;
			const char *s = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
			if (s == NULL || strlen(s) != len) {
				lua_pop(L, 1);
				return mh_errf(why, whylen, "item %zu: expected a string, got %s",
				               i + 1,
				               s ? "a string with a NUL byte" : lua_typename(L, t));
			}
			vals[i] = mh_xstrdup(s);
			o->nvalues = i + 1;
			lua_pop(L, 1);
		}
		*shape = SHAPE_LIST;
		return 0;
	}
	default:
		return mh_errf(
		    why, whylen,
		    "expected a string, a number, a boolean or a list of strings, got %s",
		    luaL_typename(L, idx));
	}
	char **vals = mh_xcalloc(2, sizeof(*vals));
	vals[0] = mh_xstrdup(scalar);
	o->values = (const char *const *)vals;
	o->nvalues = 1;
	return 0;
}

static struct cond_def *find_def(const struct mh_config_conds *cs, const char *name)
{
	for (size_t i = 0; i < cs->ndefs; i++)
		if (strcmp(cs->defs[i].name, name) == 0)
			return &cs->defs[i];
	return NULL;
}

static struct cond_def *append_def(struct mh_config_conds *cs)
{
	if (cs->ndefs == cs->capdefs) {
		cs->capdefs = cs->capdefs ? 2 * cs->capdefs : 8;
		cs->defs = mh_xrealloc(cs->defs, cs->capdefs * sizeof(*cs->defs));
	}
	struct cond_def *d = &cs->defs[cs->ndefs++];
	memset(d, 0, sizeof(*d));
	return d;
}

/* Create the built-in of d (type, opts set) and name it. */
static int create_builtin(struct cond_def *d, char *err, size_t errlen)
{
	struct mh_cond_opts opts = {d->file, d->opts, d->nopts};
	d->cond = mh_cond_builtin_new(d->type, &opts, err, errlen);
	if (d->cond == NULL)
		return -1;
	free(d->cond->name); /* the registry named it after its type */
	d->cond->name = mh_xstrdup(d->name);
	return 0;
}

/* Check a Lua condition's keys: stage functions only. */
static int check_lua_keys(lua_State *L, int idx, char **keys, size_t nkeys, char *why,
                          size_t whylen, const char **badkey)
{
	for (size_t i = 0; i < nkeys; i++) {
		*badkey = keys[i];
		if (stage_key(keys[i]) < 0)
			return mh_errf(
			    why, whylen,
			    "unknown key '%s' (a Lua condition takes only functions: "
			    "connect, helo, mail, rcpt, data, header, eoh, eom; a built-in "
			    "takes type = \"...\")",
			    keys[i]);
		lua_pushstring(L, keys[i]); /* interned already: a table key */
		int t = lua_rawget(L, idx);
		lua_pop(L, 1);
		if (t != LUA_TFUNCTION)
			return mh_errf(why, whylen, "key '%s': expected a function, got %s",
			               keys[i], lua_typename(L, t));
	}
	return 0;
}

int mh_config_conds_define(struct mh_config_conds *cs, lua_State *L, int idx, const char *name,
                           int line, const struct mh_config_src *src, char *err, size_t errlen)
{
	idx = lua_absindex(L, idx);
	const struct cond_def *prev = find_def(cs, name);
	if (prev)
		return mh_errf(err, errlen,
		               "%s:%d: condition \"%s\": duplicate name (first at line %d)",
		               src->file, line, name, prev->line);
	char **keys;
	size_t nkeys;
	if (sorted_keys(L, idx, &keys, &nkeys) < 0) {
		free_keys(keys, nkeys);
		return mh_errf(
		    err, errlen,
		    "%s:%d: condition \"%s\": a value without a name (write name = value)",
		    src->file, line, name);
	}
	char why[768], list[256];
	const char *badkey = NULL;
	int has_stage = 0;
	for (size_t i = 0; i < nkeys; i++)
		has_stage |= stage_key(keys[i]) >= 0;
	lua_pushliteral(L, "type");
	int ttype = lua_rawget(L, idx);
	const char *type = ttype == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	int rc = 0;
	if (ttype != LUA_TNIL && ttype != LUA_TSTRING) {
		badkey = "type";
		rc = mh_errf(why, sizeof(why), "key 'type': expected a string, got %s",
		             lua_typename(L, ttype));
	} else if (type == NULL && has_stage) {
		rc = check_lua_keys(L, idx, keys, nkeys, why, sizeof(why), &badkey);
	} else if (type == NULL && !mh_cond_builtin_known(name)) {
		builtin_list(list, sizeof(list));
		rc =
		    mh_errf(why, sizeof(why),
		            "not a built-in condition: give it a type (type = \"s25r\"; built-ins: "
		            "%s) or stage functions (connect = function(s) ... end)",
		            list);
	} else if (type != NULL && !mh_cond_builtin_known(type)) {
		builtin_list(list, sizeof(list));
		badkey = "type";
		rc = mh_errf(why, sizeof(why),
		             "key 'type': '%s' is not a built-in condition type (%s)", type, list);
	}
	if (rc < 0) {
		lua_pop(L, 1);
		int at = badkey ? mh_config_key_line(src, line, badkey) : line;
		mh_errf(err, errlen, "%s:%d: condition \"%s\": %s", src->file, at, name, why);
		free_keys(keys, nkeys);
		return -1;
	}
	if (type == NULL && has_stage) {
		lua_pop(L, 1);
		free_keys(keys, nkeys);
		struct mh_cond *c = mh_lua_cond_new(L, idx, name, src->file); /* may raise: first */
		struct cond_def *d = append_def(cs);
		d->name = mh_xstrdup(name);
		d->line = line;
		d->file = mh_xstrdup(src->file);
		d->cond = c;
		return 0;
	}

	/* A built-in: every key but type is an option. */
	struct cond_def *d = append_def(cs);
	d->name = mh_xstrdup(name);
	d->type = mh_xstrdup(type ? type : name);
	d->line = line;
	d->file = mh_xstrdup(src->file);
	lua_pop(L, 1);
	d->opts = mh_xcalloc(nkeys + 1, sizeof(*d->opts));
	d->shapes = mh_xcalloc(nkeys + 1, sizeof(*d->shapes));
	for (size_t i = 0; i < nkeys && rc == 0; i++) {
		if (strcmp(keys[i], "type") == 0)
			continue;
		struct mh_cond_opt *o = &d->opts[d->nopts++];
		o->key = mh_xstrdup(keys[i]);
		o->line = mh_config_key_line(src, line, keys[i]);
		lua_pushstring(L, keys[i]);
		lua_rawget(L, idx);
		if (convert_option(L, -1, o, &d->shapes[d->nopts - 1], why, sizeof(why)) < 0)
			rc = mh_errf(err, errlen, "%s:%d: condition \"%s\": key '%s': %s",
			             src->file, o->line, name, keys[i], why);
		lua_pop(L, 1);
	}
	free_keys(keys, nkeys);
	if (rc == 0)
		rc = create_builtin(d, err, errlen);
	if (rc < 0) {
		/* Drop the half-made definition: the whole load fails anyway. */
		free_opts(d->opts, d->nopts);
		free(d->shapes);
		free(d->name);
		free(d->type);
		free(d->file);
		cs->ndefs--;
		return -1;
	}
	return 0;
}

/* -------------------------------------------------------------------- when */

void mh_config_conds_want(struct mh_config_conds *cs, lua_State *L, int idx, size_t child, int line)
{
	if (cs->npending == cs->cappending) {
		cs->cappending = cs->cappending ? 2 * cs->cappending : 8;
		cs->pending = mh_xrealloc(cs->pending, cs->cappending * sizeof(*cs->pending));
	}
	struct pending_when *p = &cs->pending[cs->npending++];
	size_t n = lua_rawlen(L, idx); /* kind_when checked: a list of strings */
	*p = (struct pending_when){child, line, mh_xcalloc(n + 1, sizeof(char *)), 0};
	for (size_t i = 0; i < n; i++) {
		if (lua_rawgeti(L, idx, (lua_Integer)i + 1) == LUA_TSTRING)
			p->names[p->nnames++] = mh_xstrdup(lua_tostring(L, -1));
		lua_pop(L, 1);
	}
}

/* The condition called name: a defined one, or a built-in made now. NULL if none. */
static struct mh_cond *lookup(struct mh_config_conds *cs, const char *name, const char *file,
                              char *err, size_t errlen, int *failed)
{
	struct cond_def *d = find_def(cs, name);
	if (d)
		return d->cond;
	if (!mh_cond_builtin_known(name))
		return NULL;
	d = append_def(cs);
	d->name = mh_xstrdup(name);
	d->type = mh_xstrdup(name);
	d->file = mh_xstrdup(file);
	if (create_builtin(d, err, errlen) < 0) {
		*failed = 1;
		return NULL;
	}
	return d->cond;
}

int mh_config_conds_resolve(struct mh_config_conds *cs, struct mh_child_conf *children,
                            const char *file, char *err, size_t errlen)
{
	for (size_t i = 0; i < cs->npending; i++) {
		struct pending_when *p = &cs->pending[i];
		struct mh_child_conf *cc = &children[p->child];
		struct mh_cond **when = mh_xcalloc(p->nnames + 1, sizeof(*when));
		free((void *)cc->when);
		cc->when = when;
		cc->nwhen = 0;
		for (size_t j = 0; j < p->nnames; j++) {
			char why[768];
			int failed = 0;
			struct mh_cond *c =
			    lookup(cs, p->names[j], file, why, sizeof(why), &failed);
			if (c == NULL && failed)
				return mh_errf(err, errlen, "%s (used by milter \"%s\" at line %d)",
				               why, cc->name, p->line);
			if (c == NULL) {
				char list[256];
				builtin_list(list, sizeof(list));
				return mh_errf(
				    err, errlen,
				    "%s:%d: milter \"%s\": key 'when': unknown condition '%s' "
				    "(no condition \"%s\" block, and not a built-in: %s)",
				    file, p->line, cc->name, p->names[j], p->names[j], list);
			}
			when[cc->nwhen++] = c;
		}
	}
	return 0;
}

/* -------------------------------------------------------------------- show */

void mh_config_show_when(FILE *out, struct mh_cond *const *when, size_t n)
{
	fputs(n ? "{ " : "{", out);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ", " : "", out);
		mh_config_show_string(out, when[i]->name);
	}
	fputs(n ? " }" : "}", out);
}

static void show_value(FILE *out, const struct mh_cond_opt *o, enum opt_shape shape)
{
	const char *v = o->nvalues ? o->values[0] : "";
	switch (shape) {
	case SHAPE_NUMBER:
		/* What Lua cannot read back as a literal. */
		if (strcmp(v, "inf") == 0)
			fputs("math.huge", out);
		else if (strcmp(v, "-inf") == 0)
			fputs("-math.huge", out);
		else if (strstr(v, "nan"))
			fputs("0/0", out);
		else
			fputs(v, out);
		return;
	case SHAPE_BOOL:
		fputs(v, out);
		return;
	case SHAPE_STRING:
		mh_config_show_string(out, v);
		return;
	case SHAPE_LIST:
		fputs(o->nvalues ? "{ " : "{", out);
		for (size_t i = 0; i < o->nvalues; i++) {
			fputs(i ? ", " : "", out);
			mh_config_show_string(out, o->values[i]);
		}
		fputs(o->nvalues ? " }" : "}", out);
		return;
	}
}

/* A key as Lua reads it back: name = or ["odd-name"] = */
static void show_key(FILE *out, const char *key)
{
	static const char *const reserved[] = {
	    "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
	    "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
	    "repeat",   "return", "then", "true", "until",  "while", NULL,
	};
	int plain = !isdigit((unsigned char)key[0]) && key[0] != '\0';
	for (const char *p = key; *p && plain; p++)
		plain = is_ident(*p);
	for (const char *const *r = reserved; *r && plain; r++)
		plain = strcmp(*r, key) != 0;
	if (plain) {
		fprintf(out, "\t%s = ", key);
		return;
	}
	fputs("\t[", out);
	mh_config_show_string(out, key);
	fputs("] = ", out);
}

void mh_config_conds_show(const struct mh_config_conds *cs, FILE *out)
{
	for (size_t i = 0; cs && i < cs->ndefs; i++) {
		const struct cond_def *d = &cs->defs[i];
		fputs("\n", out);
		if (d->type == NULL) {
			fprintf(
			    out,
			    "-- condition \"%s\" (%s:%d) is written in Lua: its functions cannot "
			    "be printed.\n-- STUB: the functions below decide nothing (the milter "
			    "applies); copy the real ones from that file.\n",
			    d->name, d->file, d->line);
			fputs("condition ", out);
			mh_config_show_string(out, d->name);
			fputs(" {", out);
			unsigned stages = mh_lua_cond_stages(d->cond);
			for (int s = 0; s < MH_COND_STAGE_COUNT; s++)
				if (stages & (1u << s))
					fprintf(out, "\n\t%s = function(s) end,",
					        mh_lua_cond_stage_name((enum mh_cond_stage)s));
			fputs("\n}\n", out);
			continue;
		}
		fputs("condition ", out);
		mh_config_show_string(out, d->name);
		fputs(" {\n\ttype = ", out);
		mh_config_show_string(out, d->type);
		fputs(",\n", out);
		for (size_t j = 0; j < d->nopts; j++) {
			show_key(out, d->opts[j].key);
			show_value(out, &d->opts[j], d->shapes[j]);
			fputs(",\n", out);
		}
		fputs("}\n", out);
	}
}
