/*
 * test_cond - the condition registry (conditions/mh_cond.h): evaluation
 * and release through a type's ops (a fake type defined here), unknown
 * types refused with a reason, built-in names known, option look-up.
 * The built-ins themselves have their own tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conditions/mh_cond.h"

/* ---- a fake type: answers what its impl says, counts calls ---- */

struct fake {
	enum mh_cond_verdict answer;
	int calls;
	enum mh_cond_stage last_stage;
	int *freed; /* set to 1 by free */
};

static enum mh_cond_verdict fake_eval(const struct mh_cond *c, const struct mh_cond_ctx *ctx)
{
	struct fake *f = c->impl;

	f->calls++;
	f->last_stage = ctx->stage;
	return f->answer;
}

static void fake_free(struct mh_cond *c)
{
	struct fake *f = c->impl;

	*f->freed = 1;
	free(f);
}

static const struct mh_cond_ops fake_ops = {"fake", fake_eval, fake_free};

static struct mh_cond *fake_new(enum mh_cond_verdict answer, int *freed)
{
	struct mh_cond *c = calloc(1, sizeof(*c));
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(c);
	assert_non_null(f);
	f->answer = answer;
	f->freed = freed;
	c->ops = &fake_ops;
	c->name = strdup("fake");
	c->impl = f;
	return c;
}

static void eval_goes_through_ops(void **state)
{
	int freed = 0;
	struct mh_cond *c = fake_new(MH_COND_NOT_APPLICABLE, &freed);
	struct mh_cond_ctx ctx;
	struct fake *f = c->impl;

	memset(&ctx, 0, sizeof(ctx));
	ctx.stage = MH_COND_RCPT;
	assert_int_equal(mh_cond_eval(c, &ctx), MH_COND_NOT_APPLICABLE);
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->last_stage, MH_COND_RCPT);
	f->answer = MH_COND_APPLIES;
	assert_int_equal(mh_cond_eval(c, &ctx), MH_COND_APPLIES);
	f->answer = MH_COND_UNDECIDED;
	assert_int_equal(mh_cond_eval(c, &ctx), MH_COND_UNDECIDED);
	/* A type answering nonsense counts as undecided (never drops a child). */
	f->answer = (enum mh_cond_verdict)42;
	assert_int_equal(mh_cond_eval(c, &ctx), MH_COND_UNDECIDED);
	assert_int_equal(f->calls, 4);
	mh_cond_free(c);
	assert_int_equal(freed, 1);
}

static void free_without_type_free(void **state)
{
	static const struct mh_cond_ops bare = {"bare", fake_eval, NULL};
	struct mh_cond *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->ops = &bare;
	c->name = strdup("bare");
	mh_cond_free(c); /* name and struct released; ASan/valgrind check */
	mh_cond_free(NULL);
}

static void unknown_type_refused(void **state)
{
	char err[256];
	struct mh_cond_opts o = {"/etc/milterhub.lua", NULL, 0};

	assert_false(mh_cond_builtin_known("no-such-thing"));
	assert_false(mh_cond_builtin_known(""));
	assert_false(mh_cond_builtin_known("S25R")); /* names are exact */
	assert_null(mh_cond_builtin_new("no-such-thing", &o, err, sizeof(err)));
	assert_non_null(strstr(err, "no-such-thing"));
	assert_non_null(strstr(err, "/etc/milterhub.lua"));
	assert_null(mh_cond_builtin_new("lua", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown condition type"));
}

static void builtin_names_known(void **state)
{
	static const char *const names[] = {
	    "s25r",           "remote-network", "restrict-accounts",
	    "trusted-sender", "authenticated",  "unauthenticated",
	    "stress",         "no-stress",      "schedule",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_true(mh_cond_builtin_known(names[i]));
}

/* A built-in created with no options is named after its type. */
static void builtin_named_after_type(void **state)
{
	static const char *const names[] = {"authenticated", "unauthenticated", "s25r"};
	char err[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct mh_cond *c = mh_cond_builtin_new(names[i], NULL, err, sizeof(err));

		if (c == NULL)
			fail_msg("%s: %s", names[i], err);
		assert_string_equal(c->name, names[i]);
		assert_string_equal(c->ops->type, names[i]);
		mh_cond_free(c);
	}
}

static void opt_lookup(void **state)
{
	static const char *const wl[] = {"example.com", "example.net"};
	static const char *const v4[] = {"false"};
	const struct mh_cond_opt opts[] = {
	    {"whitelist", wl, 2, 3},
	    {"ipv4_only", v4, 1, 4},
	};
	struct mh_cond_opts o = {"t.lua", opts, 2};
	const struct mh_cond_opt *got;

	got = mh_cond_opt_get(&o, "whitelist");
	assert_non_null(got);
	assert_int_equal(got->nvalues, 2);
	assert_string_equal(got->values[1], "example.net");
	assert_int_equal(got->line, 3);
	got = mh_cond_opt_get(&o, "ipv4_only");
	assert_non_null(got);
	assert_string_equal(got->values[0], "false");
	assert_null(mh_cond_opt_get(&o, "blacklist"));
	assert_null(mh_cond_opt_get(&o, "White")); /* keys are exact */
	assert_null(mh_cond_opt_get(NULL, "whitelist"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(eval_goes_through_ops),    cmocka_unit_test(free_without_type_free),
	    cmocka_unit_test(unknown_type_refused),     cmocka_unit_test(builtin_names_known),
	    cmocka_unit_test(builtin_named_after_type), cmocka_unit_test(opt_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
