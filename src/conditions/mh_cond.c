/*
 * mh_cond - the registry of applicable conditions (design §2.7): maps a
 * built-in type name to its constructor (mh_cond_builtin.h), evaluates
 * and frees any condition through its ops, and looks options up for the
 * built-ins.
 *
 * Contract: mh_cond.h. The registry names the new condition after its
 * type (c->name, owned); the config may rename it to the name written
 * in its `condition` block.
 */
#include "conditions/mh_cond.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conditions/mh_cond_builtin.h"

typedef struct mh_cond *(*builtin_ctor)(const struct mh_cond_opts *o, char *err, size_t errlen);

/* The types whose constructor takes a want flag are wrapped here. */
static struct mh_cond *auth_yes(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	return mh_cond_auth_new(o, 1, err, errlen);
}

static struct mh_cond *auth_no(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	return mh_cond_auth_new(o, 0, err, errlen);
}

static struct mh_cond *stress_yes(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	return mh_cond_stress_new(o, 1, err, errlen);
}

static struct mh_cond *stress_no(const struct mh_cond_opts *o, char *err, size_t errlen)
{
	return mh_cond_stress_new(o, 0, err, errlen);
}

static const struct {
	const char *type;
	builtin_ctor ctor;
} builtins[] = {
    {"s25r", mh_cond_s25r_new},
    {"remote-network", mh_cond_remote_network_new},
    {"restrict-accounts", mh_cond_restrict_accounts_new},
    {"trusted-sender", mh_cond_trusted_sender_new},
    {"authenticated", auth_yes},
    {"unauthenticated", auth_no},
    {"stress", stress_yes},
    {"no-stress", stress_no},
    {"schedule", mh_cond_schedule_new},
};

static builtin_ctor find_builtin(const char *type)
{
	if (type == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (strcmp(builtins[i].type, type) == 0)
			return builtins[i].ctor;
	return NULL;
}

int mh_cond_builtin_known(const char *type)
{
	return find_builtin(type) != NULL;
}

struct mh_cond *mh_cond_builtin_new(const char *type, const struct mh_cond_opts *opts, char *err,
                                    size_t errlen)
{
	static const struct mh_cond_opts none = {NULL, NULL, 0};
	builtin_ctor ctor = find_builtin(type);
	struct mh_cond *c;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (ctor == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s%sunknown condition type \"%s\"",
			         opts != NULL && opts->file != NULL ? opts->file : "",
			         opts != NULL && opts->file != NULL ? ": " : "",
			         type != NULL ? type : "(null)");
		return NULL;
	}
	c = ctor(opts != NULL ? opts : &none, err, errlen);
	if (c == NULL) {
		if (err != NULL && errlen > 0 && err[0] == '\0')
			snprintf(err, errlen, "condition \"%s\": cannot be created", type);
		return NULL;
	}
	free(c->name);
	c->name = strdup(type);
	if (c->name == NULL) {
		mh_cond_free(c);
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "condition \"%s\": out of memory", type);
		return NULL;
	}
	return c;
}

enum mh_cond_verdict mh_cond_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	enum mh_cond_verdict v;

	assert(c != NULL && c->ops != NULL && c->ops->eval != NULL);
	v = c->ops->eval(c, ctx);
	/* Anything else from a type is a bug there; the child is not dropped for it. */
	if (v != MH_COND_APPLIES && v != MH_COND_NOT_APPLICABLE)
		v = MH_COND_UNDECIDED;
	return v;
}

/* ops->free releases impl (what the type owns); the name and the struct
 * (malloc'ed by the constructor) are released here. */
void mh_cond_free(struct mh_cond *c)
{
	if (c == NULL)
		return;
	if (c->ops != NULL && c->ops->free != NULL)
		c->ops->free(c);
	free(c->name);
	free(c);
}

const struct mh_cond_opt *mh_cond_opt_get(const struct mh_cond_opts *o, const char *key)
{
	if (o == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < o->nopts; i++)
		if (o->opts[i].key != NULL && strcmp(o->opts[i].key, key) == 0)
			return &o->opts[i];
	return NULL;
}
