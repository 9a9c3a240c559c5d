/*
 * mh_cond_optutil - option checking shared by the built-in conditions
 * (internal to src/conditions/, not part of the condition interface).
 *
 * Every diagnostic has the shape the config loader prints as is:
 *	FILE:LINE: condition "TYPE": unknown key 'x'
 *	FILE:LINE: condition "TYPE": key 'k': <what is wrong>
 * Header-only (static inline) so that each module stays one .c file and
 * does not depend on mh_cond.c being linked.
 */
#ifndef MH_COND_OPTUTIL_H
#define MH_COND_OPTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conditions/mh_cond.h"
#include "util/mh_err.h"

/* Reject any option whose key is not in the NULL-terminated list known. */
static inline int mh_condopt_check_keys(const char *type, const struct mh_cond_opts *o,
                                        const char *const *known, char *err, size_t errlen)
{
	size_t i, k;

	for (i = 0; o != NULL && i < o->nopts; i++) {
		for (k = 0; known[k] != NULL; k++)
			if (strcmp(o->opts[i].key, known[k]) == 0)
				break;
		if (known[k] == NULL) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "%s:%d: condition \"%s\": unknown key '%s'",
				         o->file ? o->file : "?", o->opts[i].line, type,
				         o->opts[i].key);
			return -1;
		}
	}
	return 0;
}

/* The option named key (the last one if repeated), NULL when absent. */
static inline const struct mh_cond_opt *mh_condopt_find(const struct mh_cond_opts *o,
                                                        const char *key)
{
	const struct mh_cond_opt *found = NULL;
	size_t i;

	for (i = 0; o != NULL && i < o->nopts; i++)
		if (strcmp(o->opts[i].key, key) == 0)
			found = &o->opts[i];
	return found;
}

/* "FILE:LINE: condition "TYPE": key 'k': <fmt...>"; returns -1. */
static inline int mh_condopt_errf(char *err, size_t errlen, const char *type,
                                  const struct mh_cond_opts *o, const struct mh_cond_opt *opt,
                                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static inline int mh_condopt_errf(char *err, size_t errlen, const char *type,
                                  const struct mh_cond_opts *o, const struct mh_cond_opt *opt,
                                  const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return -1;
	n = snprintf(err, errlen,
	             "%s:%d: condition \"%s\": key '%s': ", o && o->file ? o->file : "?", opt->line,
	             type, opt->key);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The single value of opt, or NULL with an error when it is a list. */
static inline const char *mh_condopt_scalar(const char *type, const struct mh_cond_opts *o,
                                            const struct mh_cond_opt *opt, char *err, size_t errlen)
{
	if (opt->nvalues != 1 || opt->values[0] == NULL) {
		mh_condopt_errf(err, errlen, type, o, opt, "takes exactly one value, got %zu",
		                opt->nvalues);
		return NULL;
	}
	return opt->values[0];
}

#endif
