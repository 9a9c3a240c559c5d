/*
 * test_cond_lists - "restrict-accounts" (per recipient at RCPT: exact
 * address, domain, pattern, list file) and "trusted-sender" (sender's
 * domain at MAIL, sets a macro for the child), design §2.7, with the
 * diagnostics for every bad option.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cond_testutil.h"
#include "conditions/mh_cond_builtin.h"

static enum mh_cond_verdict rcpt_verdict(const struct mh_cond *c, const char *rcpt)
{
	struct ct_ctx t;

	ct_ctx_init(&t, MH_COND_RCPT);
	t.ctx.sender = "<someone@example.net>";
	t.ctx.rcpt = rcpt;
	return c->ops->eval(c, &t.ctx);
}

#define FOR_HIM(c, r) assert_int_equal(rcpt_verdict(c, r), MH_COND_APPLIES)
#define NOT_FOR_HIM(c, r) assert_int_equal(rcpt_verdict(c, r), MH_COND_NOT_APPLICABLE)

static struct mh_cond *accounts(const char *a, const char *b2, const char *c3)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c = mh_cond_restrict_accounts_new(
	    ct_opts(&b, "accounts", 2, a, b2, c3, NULL, NULL), err, sizeof(err));

	if (c == NULL)
		fail_msg("%s", err);
	return c;
}

static void exact_address_matches_without_brackets_and_case(void **state)
{
	struct mh_cond *c = accounts("user@example.com", NULL, NULL);

	(void)state;
	FOR_HIM(c, "<user@example.com>");
	FOR_HIM(c, "user@example.com");
	FOR_HIM(c, "<User@EXAMPLE.Com>");
	FOR_HIM(c, " <user@example.com> ");
	FOR_HIM(c, "<@relay.example:user@example.com>");
	NOT_FOR_HIM(c, "<user2@example.com>");
	NOT_FOR_HIM(c, "<use@example.com>");
	NOT_FOR_HIM(c, "<user@example.com.evil>");
	NOT_FOR_HIM(c, "<>");
	ct_free(c);
}

static void domain_entry_matches_every_account_there(void **state)
{
	struct mh_cond *c = accounts("example.com", "@Example.ORG", NULL);

	(void)state;
	FOR_HIM(c, "<alice@example.com>");
	FOR_HIM(c, "<BOB@EXAMPLE.COM>");
	FOR_HIM(c, "<carol@example.org>");
	NOT_FOR_HIM(c, "<alice@sub.example.com>");
	NOT_FOR_HIM(c, "<alice@example.com.evil>");
	NOT_FOR_HIM(c, "<alice@notexample.com>");
	NOT_FOR_HIM(c, "<example.com>");
	NOT_FOR_HIM(c, "<postmaster>");
	ct_free(c);
}

static void regex_entry_is_extended_and_case_insensitive(void **state)
{
	struct mh_cond *c = accounts("/^(sales|info)@/", "/\\.jp$/", "nobody@example.net");

	(void)state;
	FOR_HIM(c, "<sales@example.com>");
	FOR_HIM(c, "<INFO@shop.example>");
	FOR_HIM(c, "<taro@example.co.JP>");
	FOR_HIM(c, "<nobody@example.net>");
	NOT_FOR_HIM(c, "<presales@example.com>");
	NOT_FOR_HIM(c, "<taro@example.jp.com>");
	ct_free(c);
}

static void decides_only_at_rcpt(void **state)
{
	struct mh_cond *c = accounts("example.com", NULL, NULL);
	struct ct_ctx t;
	int st;

	(void)state;
	for (st = 0; st < MH_COND_STAGE_COUNT; st++) {
		if (st == MH_COND_RCPT)
			continue;
		ct_ctx_init(&t, (enum mh_cond_stage)st);
		t.ctx.sender = "<a@example.com>";
		assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_UNDECIDED);
	}
	ct_free(c);
}

/* A temporary directory holding name with text; path receives the file. */
static void write_file(char *dir, const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void accounts_file_entries_with_comments_relative_to_config(void **state)
{
	char dir[] = "/tmp/test_cond_lists.XXXXXX", path[256], conf[256];
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c;

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_file(dir, "accounts.txt",
	           "# staff\n\nboss@example.com\n  @sales.example  \n/^abuse@/\n# end\n", path,
	           sizeof(path));
	snprintf(conf, sizeof(conf), "%s/milterhub.lua", dir);
	c = mh_cond_restrict_accounts_new(ct_opts_file(&b, conf, "accounts_file", 4, "accounts.txt",
	                                               NULL, "accounts", 3, "extra@example.com",
	                                               NULL, NULL),
	                                  err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	FOR_HIM(c, "<boss@example.com>");
	FOR_HIM(c, "<anyone@SALES.example>");
	FOR_HIM(c, "<abuse@example.net>");
	FOR_HIM(c, "<extra@example.com>");
	NOT_FOR_HIM(c, "<staff@example.com>");
	NOT_FOR_HIM(c, "<# staff>");
	ct_free(c);

	/* An absolute path works from anywhere; a bad line names file and line. */
	write_file(dir, "bad.txt", "ok@example.com\n# x\n/(unclosed/\n", path, sizeof(path));
	assert_null(mh_cond_restrict_accounts_new(ct_opts(&b, "accounts_file", 9, path, NULL, NULL),
	                                          err, sizeof(err)));
	{
		char want[512];

		snprintf(want, sizeof(want),
		         "test.lua:9: condition \"restrict-accounts\": key 'accounts_file': "
		         "%s:3: bad regex '/(unclosed/': ",
		         path);
		assert_memory_equal(err, want, strlen(want));
	}
	unlink(path);
	snprintf(path, sizeof(path), "%s/accounts.txt", dir);
	unlink(path);
	rmdir(dir);
}

/* Creating with (key at line 5, one value) fails with an error starting with want. */
static void expect_error(struct mh_cond *(*ctor)(const struct mh_cond_opts *, char *, size_t),
                         const char *key, const char *value, const char *want)
{
	struct ct_opts b;
	char err[256] = "";

	assert_null(ctor(ct_opts(&b, key, 5, value, NULL, NULL), err, sizeof(err)));
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", err, want);
}

static void restrict_accounts_bad_options(void **state)
{
	struct ct_opts b;
	char err[256] = "";

	(void)state;
	expect_error(mh_cond_restrict_accounts_new, "acounts", "a@b",
	             "test.lua:5: condition \"restrict-accounts\": unknown key 'acounts'");
	expect_error(
	    mh_cond_restrict_accounts_new, "accounts", "/(/",
	    "test.lua:5: condition \"restrict-accounts\": key 'accounts': bad regex '/(/': ");
	expect_error(mh_cond_restrict_accounts_new, "accounts", "a@b@c",
	             "test.lua:5: condition \"restrict-accounts\": key 'accounts': bad account "
	             "'a@b@c'");
	expect_error(mh_cond_restrict_accounts_new, "accounts", "user@",
	             "test.lua:5: condition \"restrict-accounts\": key 'accounts': bad account "
	             "'user@'");
	expect_error(mh_cond_restrict_accounts_new, "accounts", "",
	             "test.lua:5: condition \"restrict-accounts\": key 'accounts': bad account ''");
	expect_error(mh_cond_restrict_accounts_new, "accounts_file", "/nonexistent/accounts",
	             "test.lua:5: condition \"restrict-accounts\": key 'accounts_file': cannot "
	             "read '/nonexistent/accounts': No such file or directory");
	assert_null(mh_cond_restrict_accounts_new(ct_opts(&b, NULL), err, sizeof(err)));
	assert_string_equal(err, "test.lua: condition \"restrict-accounts\": needs key "
	                         "'accounts' or 'accounts_file'");
}

/* ------------------------------------------------------- trusted-sender */

static void trusted_sender_sets_the_macro_and_applies(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c = mh_cond_trusted_sender_new(
	    ct_opts(&b, "domains", 2, "example.com", "@partner.example", NULL, NULL), err,
	    sizeof(err));
	struct ct_ctx t;

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->ops->type, "trusted-sender");

	ct_ctx_init(&t, MH_COND_MAIL);
	t.ctx.sender = "<Alice@Example.COM>";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_APPLIES);
	assert_int_equal(t.nset, 1);
	assert_string_equal(t.set_name[0], "{trusted_domain}");
	assert_string_equal(t.set_value[0], "yes");

	ct_ctx_init(&t, MH_COND_MAIL);
	t.ctx.sender = "<bob@partner.example>";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_APPLIES);
	assert_int_equal(t.nset, 1);

	ct_ctx_init(&t, MH_COND_MAIL);
	t.ctx.sender = "<mallory@example.com.evil>";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_NOT_APPLICABLE);
	assert_int_equal(t.nset, 0);
	ct_free(c);
}

static void null_sender_is_never_trusted_and_helo_is_too_early(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c = mh_cond_trusted_sender_new(
	    ct_opts(&b, "domains", 2, "example.com", NULL, NULL), err, sizeof(err));
	struct ct_ctx t;

	(void)state;
	assert_non_null(c);
	ct_ctx_init(&t, MH_COND_MAIL);
	t.ctx.sender = "<>";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_NOT_APPLICABLE);
	t.ctx.sender = "<example.com>";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_NOT_APPLICABLE);
	assert_int_equal(t.nset, 0);
	ct_ctx_init(&t, MH_COND_CONNECT);
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_UNDECIDED);
	ct_ctx_init(&t, MH_COND_HELO);
	t.ctx.helo = "mail.example.com";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_UNDECIDED);
	assert_int_equal(t.nset, 0);
	ct_free(c);
}

static void trusted_sender_custom_macro_and_domains_file(void **state)
{
	char dir[] = "/tmp/test_cond_lists.XXXXXX", path[256];
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c;
	struct ct_ctx t;

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_file(dir, "trusted", "# ours\nexample.net\n", path, sizeof(path));
	c = mh_cond_trusted_sender_new(ct_opts(&b, "domains_file", 2, path, NULL, "macro", 3,
	                                       "{internal}", NULL, "macro_value", 4, "1", NULL,
	                                       NULL),
	                               err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	ct_ctx_init(&t, MH_COND_MAIL);
	t.ctx.sender = "<x@EXAMPLE.net>";
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_APPLIES);
	assert_int_equal(t.nset, 1);
	assert_string_equal(t.set_name[0], "{internal}");
	assert_string_equal(t.set_value[0], "1");
	t.ctx.set_macro = NULL; /* a hub without set_macro still gets the verdict */
	assert_int_equal(c->ops->eval(c, &t.ctx), MH_COND_APPLIES);
	ct_free(c);
	unlink(path);
	rmdir(dir);
}

static void trusted_sender_bad_options(void **state)
{
	struct ct_opts b;
	char err[256] = "";

	(void)state;
	expect_error(mh_cond_trusted_sender_new, "domain", "example.com",
	             "test.lua:5: condition \"trusted-sender\": unknown key 'domain'");
	expect_error(mh_cond_trusted_sender_new, "domains", "user@example.com",
	             "test.lua:5: condition \"trusted-sender\": key 'domains': bad domain "
	             "'user@example.com'");
	expect_error(mh_cond_trusted_sender_new, "domains_file", "/nonexistent/x",
	             "test.lua:5: condition \"trusted-sender\": key 'domains_file': cannot read "
	             "'/nonexistent/x'");
	assert_null(mh_cond_trusted_sender_new(
	    ct_opts(&b, "domains", 2, "example.com", NULL, "macro", 6, "{a}", "{b}", NULL, NULL),
	    err, sizeof(err)));
	assert_string_equal(err, "test.lua:6: condition \"trusted-sender\": key 'macro': takes "
	                         "exactly one value, got 2");
	assert_null(mh_cond_trusted_sender_new(
	    ct_opts(&b, "domains", 2, "example.com", NULL, "macro_value", 8, "", NULL, NULL), err,
	    sizeof(err)));
	assert_string_equal(err, "test.lua:8: condition \"trusted-sender\": key 'macro_value': "
	                         "must not be empty");
	assert_null(mh_cond_trusted_sender_new(ct_opts(&b, "macro", 3, "{x}", NULL, NULL), err,
	                                       sizeof(err)));
	assert_string_equal(
	    err, "test.lua: condition \"trusted-sender\": needs key 'domains' or 'domains_file'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(exact_address_matches_without_brackets_and_case),
	    cmocka_unit_test(domain_entry_matches_every_account_there),
	    cmocka_unit_test(regex_entry_is_extended_and_case_insensitive),
	    cmocka_unit_test(decides_only_at_rcpt),
	    cmocka_unit_test(accounts_file_entries_with_comments_relative_to_config),
	    cmocka_unit_test(restrict_accounts_bad_options),
	    cmocka_unit_test(trusted_sender_sets_the_macro_and_applies),
	    cmocka_unit_test(null_sender_is_never_trusted_and_helo_is_too_early),
	    cmocka_unit_test(trusted_sender_custom_macro_and_domains_file),
	    cmocka_unit_test(trusted_sender_bad_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
