/*
 * mh_cond_session - conditions on the SMTP session as a whole (design
 * §2.7): did the client authenticate, is the server under stress?
 *
 * "authenticated" / "unauthenticated" (no options): decided at MAIL from
 *   the MTA macros {auth_type} and {auth_authen}: either one set and
 *   non-empty means the client authenticated (SMTP AUTH). Before MAIL the
 *   verdict is UNDECIDED, so a child keeps applying through connect and
 *   helo and is left out from MAIL on (for the transaction) if the
 *   condition does not hold.
 *   Postfix sends these macros only if `milter_mail_macros` lists them;
 *   its default ("i {auth_type} {auth_authen} {auth_author} {mail_addr}
 *   {mail_host} {mail_mailer}") does. Sendmail sends {auth_type} and
 *   {auth_authen} at MAIL by default (confMILTER_MACROS_ENVFROM). The
 *   hub requests both for the MAIL stage anyway in option negotiation
 *   (the hub_macros of mh_negotiate_reply, milter v6 SETSYMLIST), so an
 *   MTA that honours the request sends them even if its list was trimmed.
 *
 * "stress" / "no-stress": `threshold` (whole number >= 1, default 100):
 *   "stress" APPLIES when ctx->concurrent_sessions >= threshold (this
 *   process's sessions in progress, the current one included), else
 *   NOT_APPLICABLE; "no-stress" is the opposite. Decided at CONNECT, so
 *   a connection keeps its verdict for its whole life.
 *
 * Eval only reads the ctx; nothing is allocated.
 *
 * Diagnostics: "FILE:LINE: condition "TYPE": unknown key 'x'",
 * "FILE:LINE: condition "stress": key 'threshold': must be a whole
 * number from 1 to 1000000, got 'x'".
 */
#include <stdlib.h>

#include "conditions/mh_cond_builtin.h"
#include "conditions/mh_cond_optutil.h"
#include "util/mh_buf.h"

#define STRESS_DEFAULT 100u
#define STRESS_MAX 1000000u

/* The built-ins here keep one small value as impl. */
struct session_impl {
	int want; /* 1: "authenticated"/"stress", 0: the negation */
	unsigned threshold; /* stress only */
};

static struct mh_cond *new_cond(const struct mh_cond_ops *ops, int want, unsigned threshold)
{
	struct mh_cond *c = mh_xcalloc(1, sizeof(*c));
	struct session_impl *s = mh_xcalloc(1, sizeof(*s));

	s->want = want;
	s->threshold = threshold;
	c->ops = ops;
	c->impl = s;
	return c;
}

static void session_free(struct mh_cond *c)
{
	free(c->impl);
	c->impl = NULL;
}

static enum mh_cond_verdict verdict(int holds, int want)
{
	return (!!holds == !!want) ? MH_COND_APPLIES : MH_COND_NOT_APPLICABLE;
}

/* -------------------------------------------------------- authenticated */

static int macro_set(const struct mh_cond_ctx *ctx, const char *name)
{
	const char *v = ctx->macro != NULL ? ctx->macro(ctx, name) : NULL;

	return v != NULL && *v != '\0';
}

static enum mh_cond_verdict auth_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct session_impl *s = c->impl;

	if (ctx->stage < MH_COND_MAIL)
		return MH_COND_UNDECIDED; /* AUTH comes after HELO, before MAIL */
	return verdict(macro_set(ctx, "{auth_type}") || macro_set(ctx, "{auth_authen}"), s->want);
}

static const struct mh_cond_ops auth_ops = {"authenticated", auth_eval, session_free};
static const struct mh_cond_ops unauth_ops = {"unauthenticated", auth_eval, session_free};

struct mh_cond *mh_cond_auth_new(const struct mh_cond_opts *o, int want, char *err, size_t errlen)
{
	static const char *const known[] = {NULL};
	const struct mh_cond_ops *ops = want ? &auth_ops : &unauth_ops;

	if (mh_condopt_check_keys(ops->type, o, known, err, errlen) != 0)
		return NULL;
	return new_cond(ops, want, 0);
}

/* --------------------------------------------------------------- stress */

static enum mh_cond_verdict stress_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	const struct session_impl *s = c->impl;

	return verdict(ctx->concurrent_sessions >= s->threshold, s->want);
}

static const struct mh_cond_ops stress_ops = {"stress", stress_eval, session_free};
static const struct mh_cond_ops nostress_ops = {"no-stress", stress_eval, session_free};

struct mh_cond *mh_cond_stress_new(const struct mh_cond_opts *o, int want, char *err, size_t errlen)
{
	static const char *const known[] = {"threshold", NULL};
	const struct mh_cond_ops *ops = want ? &stress_ops : &nostress_ops;
	const struct mh_cond_opt *opt;
	unsigned threshold = STRESS_DEFAULT;

	if (mh_condopt_check_keys(ops->type, o, known, err, errlen) != 0)
		return NULL;
	opt = mh_condopt_find(o, "threshold");
	if (opt != NULL) {
		const char *v = mh_condopt_scalar(ops->type, o, opt, err, errlen);
		char *end = (char *)v;
		unsigned long n;

		if (v == NULL)
			return NULL;
		n = (*v >= '0' && *v <= '9') ? strtoul(v, &end, 10) : 0;
		if (n < 1 || n > STRESS_MAX || *end != '\0') {
			mh_condopt_errf(err, errlen, ops->type, o, opt,
			                "must be a whole number from 1 to %u, got '%s'", STRESS_MAX,
			                v);
			return NULL;
		}
		threshold = (unsigned)n;
	}
	return new_cond(ops, want, threshold);
}
