/*
 * cond_testutil - helpers for the built-in condition tests: options as
 * the config loader would pass them, a fake evaluation context whose
 * macro() reads a small table and whose set_macro() records its calls,
 * and freeing a condition without the registry.
 * Everything lives in caller-owned structs; nothing is allocated.
 */
#ifndef COND_TESTUTIL_H
#define COND_TESTUTIL_H

#include "conditions/mh_cond.h"

#define CT_MAX_OPTS 8
#define CT_MAX_VALUES 16
#define CT_MAX_MACROS 8

struct ct_opts {
	struct mh_cond_opt opt[CT_MAX_OPTS];
	const char *values[CT_MAX_OPTS][CT_MAX_VALUES];
	struct mh_cond_opts o;
};

/*
 * Fill b from (key, line, value..., NULL)... groups ended by a NULL key;
 * the file name is "test.lua" unless ct_opts_file() changes it.
 * Returns &b->o.
 */
const struct mh_cond_opts *ct_opts(struct ct_opts *b, ...);
const struct mh_cond_opts *ct_opts_file(struct ct_opts *b, const char *file, ...);

struct ct_ctx {
	struct mh_cond_ctx ctx;
	const char *macro_name[CT_MAX_MACROS], *macro_value[CT_MAX_MACROS];
	size_t nmacros;
	const char *set_name[CT_MAX_MACROS], *set_value[CT_MAX_MACROS]; /* recorded */
	size_t nset;
};

/* A context at stage st for an IPv4 client 192.0.2.1 "[192.0.2.1]". */
void ct_ctx_init(struct ct_ctx *c, enum mh_cond_stage st);
/* Make the fake MTA send macro name ("{x}" form) with value. */
void ct_ctx_macro(struct ct_ctx *c, const char *name, const char *value);

/* Free a condition as mh_cond_free does (ops->free, then name and struct). */
void ct_free(struct mh_cond *c);

#endif
