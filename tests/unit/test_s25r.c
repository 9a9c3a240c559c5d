/*
 * test_s25r - the "s25r" condition (design §2.7, mh_cond_s25r.c):
 * a table of real-looking client names with the S25R verdict both ways
 * (each of the six rules, "unknown" and address literals, names that
 * must pass), the default whitelist rescuing big senders, whitelist
 * beating blacklist, suffix and /regex/ entries, IPv6 skipped unless
 * ipv4_only = false, configuration errors naming file, line, key, and
 * the same through the registry (mh_cond_builtin_new "s25r").
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conditions/mh_cond.h"
#include "conditions/mh_cond_builtin.h"

#define DYN MH_COND_APPLIES
#define STATIC MH_COND_NOT_APPLICABLE

struct host_case {
	const char *name;
	enum mh_cond_verdict want;
	const char *why;
};

/* Default options: default whitelist on, IPv4 only, no lists. */
static const struct host_case hosts[] = {
    /* No reverse name (S25R "rule 0"). */
    {"unknown", DYN, "no reverse name"},
    {"UNKNOWN", DYN, "no reverse name, any case"},
    {"[192.0.2.7]", DYN, "address literal"},
    {"[198.51.100.23]", DYN, "address literal"},
    {"", DYN, "empty name"},
    /* Rule 1: two digit runs in the first label. */
    {"203-0-113-5.dhcp.example.net", DYN, "rule 1"},
    {"p4073-ipbf1003funabasi.chiba.ocn.ne.jp", DYN, "rule 1"},
    {"c-67-180-41-148.hsd1.ca.comcast.net", DYN, "rule 1"},
    {"cpe-174-109-1-2.nc.res.rr.com", DYN, "rule 1"},
    {"pool-71-123-45-67.bstnma.fios.verizon.net", DYN, "rule 1"},
    {"ip68-100-200-3.dc.dc.cox.net", DYN, "rule 1"},
    {"host86-150-12-1.range86-150.btcentralplus.com", DYN, "rule 1"},
    {"h219x110x17x38.example.net", DYN, "rule 1"},
    {"FL1-60-236-1-2.tky.mesh.ad.jp", DYN, "rule 1"},
    {"i121-112-34-56.s41.a013.ap.plala.or.jp", DYN, "rule 1"},
    {"192-0-2-7.static.example.com", DYN, "rule 1: 'static' does not help"},
    {"Dynamic-78-8-1-2.ssp.dialog.net.pl", DYN, "rule 1, mixed case"},
    /* Rule 2: five digits in a row in the first label. */
    {"KD111239012345.au-net.ne.jp", DYN, "rule 2"},
    {"softbank126012345678.bbtec.net", DYN, "rule 2"},
    {"ppp12345.isp.example", DYN, "rule 2 (and 6)"},
    {"mail12345.example.com", DYN, "rule 2 catches servers too"},
    /* Rule 3: first or second label starts with a digit, 4+ levels. */
    {"211.8.49.163.dy.bbexcite.jp", DYN, "rule 3"},
    {"8bit.users.example.co.uk", DYN, "rule 3, first label"},
    {"host.3abc.example.ne.jp", DYN, "rule 3, second label"},
    /* Rule 4: first label ends with a digit, second has digit-digit. */
    {"ct1.12-34.example.net", DYN, "rule 4"},
    {"ns1.203-0-113.example.net", DYN, "rule 4"},
    /* Rule 5: 5+ levels, the first two labels end with a digit. */
    {"gw1.pool3.example.co.uk", DYN, "rule 5"},
    {"mx1.cust2.example.ne.jp", DYN, "rule 5"},
    /* Rule 6: dhcp, dialup, ppp, *dsl first label with a digit. */
    {"dhcp7.example.org", DYN, "rule 6"},
    {"dialupX1.example.com", DYN, "rule 6"},
    {"adsl2pool.example.net", DYN, "rule 6"},
    {"vdsl3.example.net", DYN, "rule 6"},
    {"dsl5.example.net", DYN, "rule 6, bare dsl"},
    {"dsl-187-12.example.com", DYN, "rule 6 (and 1)"},
    /* Names S25R lets through. */
    {"mail.example.com", STATIC, "plain server name"},
    {"mx1.example.org", STATIC, "one digit run"},
    {"smtp.isp.example.net", STATIC, "no digit"},
    {"smtp1.example.ne.jp", STATIC, "second label has no digit"},
    {"mail2.example.com", STATIC, "one digit run"},
    {"mx01.mail.example.net", STATIC, "one digit run"},
    {"mx-01.example.org", STATIC, "one digit run after the hyphen"},
    {"fmail1234.example.com", STATIC, "four digits only"},
    {"out1.mailhost.example.org", STATIC, "second label has no digit"},
    {"relay.example.jp", STATIC, "no digit"},
    {"mail.2example.com", STATIC, "rule 3 needs four levels"},
    {"dhcp.example.com", STATIC, "rule 6 needs a digit"},
    {"pppoe.example.com", STATIC, "rule 6 needs a digit"},
    {"adsl-pool.example.com", STATIC, "rule 6 needs a digit"},
    {"p1234-ipad.example.ne.jp", STATIC, "one digit run, ends with a letter"},
    {"host1x2", STATIC, "rule 1 needs a dot after the first label"},
    {"localhost", STATIC, "no digit"},
    {"gw1.pool3.example.com.", STATIC, "rule 5 needs five levels; a final dot is no level"},
    /* Big senders: the rules match, the default whitelist rescues. */
    {"mail-ed1-f45.google.com", STATIC, "default whitelist: google.com"},
    {"mail-sor-f41-12.google.com.", STATIC, "default whitelist, trailing dot"},
    {"a8-12.smtp-out.amazonses.com", STATIC, "default whitelist: amazonses.com"},
    {"mail-db8eur05on2101.outbound.protection.outlook.com", STATIC, "default: outlook.com"},
    {"sonic301-22.consmr.mail.ne1.yahoo.com", STATIC, "default whitelist: yahoo.com"},
    {"mail180-16.suw21.mandrillapp.com", STATIC, "default: mandrillapp.com"},
    {"MAIL-WR1-F53.GOOGLE.COM", STATIC, "default whitelist, any case"},
    /* Suffix matching is on label boundaries. */
    {"mail-ed1-f45.notgoogle.com", DYN, "notgoogle.com is not google.com"},
};

static enum mh_cond_verdict eval_family(const struct mh_cond *c, const char *name, int family,
                                        enum mh_cond_stage stage)
{
	struct mh_cond_ctx ctx = {
	    .stage = stage,
	    .client_name = name,
	    .client_addr = family == AF_INET6 ? "2001:db8::25" : "192.0.2.25",
	    .client_family = family,
	};
	return mh_cond_eval(c, &ctx);
}

static enum mh_cond_verdict eval_name(const struct mh_cond *c, const char *name)
{
	return eval_family(c, name, AF_INET, MH_COND_CONNECT);
}

/* Options from (key, line, values...) triples built by the tests. */
struct opt_spec {
	const char *key;
	int line;
	const char *values[4];
};

static struct mh_cond *make(const struct opt_spec *specs, size_t n, char *err, size_t errlen)
{
	struct mh_cond_opt opts[8];
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		size_t nv = 0;
		while (nv < 4 && specs[i].values[nv] != NULL)
			nv++;
		opts[i] = (struct mh_cond_opt){
		    .key = specs[i].key,
		    .values = specs[i].values,
		    .nvalues = nv,
		    .line = specs[i].line,
		};
	}
	struct mh_cond_opts o = {.file = "milterhub.lua", .opts = opts, .nopts = n};
	return mh_cond_s25r_new(&o, err, errlen);
}

static struct mh_cond *make_ok(const struct opt_spec *specs, size_t n)
{
	char err[256] = "";
	struct mh_cond *c = make(specs, n, err, sizeof(err));
	if (c == NULL)
		fail_msg("unexpected error: %s", err);
	return c;
}

static void expect(const struct mh_cond *c, const char *name, enum mh_cond_verdict want)
{
	enum mh_cond_verdict got = eval_name(c, name);
	if (got != want)
		fail_msg("%s: got %s, want %s", name, got == DYN ? "dynamic" : "static",
		         want == DYN ? "dynamic" : "static");
}

static void host_table_gives_published_verdicts(void **state)
{
	(void)state;
	assert_true(sizeof(hosts) / sizeof(hosts[0]) >= 40);
	struct mh_cond *c = make_ok(NULL, 0);
	assert_string_equal(c->ops->type, "s25r");
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		enum mh_cond_verdict got = eval_name(c, hosts[i].name);
		if (got != hosts[i].want)
			fail_msg("\"%s\" (%s): got %s", hosts[i].name, hosts[i].why,
			         got == DYN ? "dynamic" : "static");
	}
	mh_cond_free(c);
}

static void missing_name_looks_dynamic(void **state)
{
	(void)state;
	struct mh_cond *c = make_ok(NULL, 0);
	assert_int_equal(eval_name(c, NULL), DYN);
	mh_cond_free(c);
}

static void decides_at_every_stage_never_undecided(void **state)
{
	(void)state;
	struct mh_cond *c = make_ok(NULL, 0);
	for (int st = MH_COND_CONNECT; st < MH_COND_STAGE_COUNT; st++) {
		assert_int_equal(eval_family(c, "dhcp7.example.org", AF_INET, st), DYN);
		assert_int_equal(eval_family(c, "mail.example.com", AF_INET, st), STATIC);
	}
	mh_cond_free(c);
}

static void whitelist_beats_blacklist(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"blacklist", 3, {"example.com"}},
	    {"whitelist", 4, {"mx1.example.com"}},
	};
	struct mh_cond *c = make_ok(o, 2);
	expect(c, "mx1.example.com", STATIC); /* in both: whitelist wins */
	expect(c, "a.mx1.example.com", STATIC); /* below a whitelisted name */
	expect(c, "mail.example.com", DYN); /* blacklist forces a static name */
	expect(c, "example.com", DYN); /* the suffix matches itself */
	expect(c, "mail.example.org", STATIC); /* not listed, rules say static */
	expect(c, "dhcp7.example.org", DYN); /* not listed, rules say dynamic */
	mh_cond_free(c);
}

static void whitelist_rescues_dynamic_looking_host(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"whitelist", 5, {".partner.example", "[192.0.2.7]"}},
	};
	struct mh_cond *c = make_ok(o, 1);
	expect(c, "203-0-113-5.mail.partner.example", STATIC);
	expect(c, "partner.example", STATIC);
	expect(c, "203-0-113-5.otherpartner.example", DYN);
	expect(c, "[192.0.2.7]", STATIC);
	expect(c, "[192.0.2.8]", DYN);
	/* The default whitelist still counts when extended. */
	expect(c, "mail-ed1-f45.google.com", STATIC);
	mh_cond_free(c);
}

static void blacklist_beats_default_whitelist(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"blacklist", 6, {"noisy.google.com"}},
	};
	struct mh_cond *c = make_ok(o, 1);
	expect(c, "mail-ed1-f45.noisy.google.com", DYN);
	expect(c, "mail-ed1-f45.google.com", STATIC);
	mh_cond_free(c);
}

static void regex_entries_are_extended_and_case_insensitive(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"whitelist", 7, {"/^mta[0-9]+\\.bulk\\.example\\.net$/"}},
	    {"blacklist", 8, {"/(^|\\.)cloud(vps)?\\.example$/"}},
	};
	struct mh_cond *c = make_ok(o, 2);
	expect(c, "MTA12.bulk.example.net", STATIC);
	expect(c, "mta12.bulk.example.net.evil", STATIC); /* rules: one digit run only */
	expect(c, "vm.cloudvps.example", DYN);
	expect(c, "cloud.example", DYN);
	expect(c, "mycloud.example", STATIC);
	mh_cond_free(c);
}

static void default_whitelist_false_drops_the_table(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"default_whitelist", 9, {"false"}},
	    {"whitelist", 10, {"amazonses.com"}},
	};
	struct mh_cond *c = make_ok(o, 2);
	expect(c, "mail-ed1-f45.google.com", DYN);
	expect(c, "a8-12.smtp-out.amazonses.com", STATIC);
	expect(c, "mail.example.com", STATIC);
	mh_cond_free(c);
}

static void ipv6_skipped_unless_ipv4_only_false(void **state)
{
	(void)state;
	struct mh_cond *c = make_ok(NULL, 0);
	assert_int_equal(eval_family(c, "unknown", AF_INET6, MH_COND_CONNECT), STATIC);
	assert_int_equal(eval_family(c, "dhcp7.example.org", AF_INET6, MH_COND_CONNECT), STATIC);
	/* Sendmail's literal for an unnamed IPv6 client, whatever the family says. */
	assert_int_equal(eval_family(c, "[IPv6:2001:db8::25]", AF_UNSPEC, MH_COND_CONNECT), STATIC);
	mh_cond_free(c);

	const struct opt_spec o[] = {{"ipv4_only", 11, {"false"}}};
	c = make_ok(o, 1);
	assert_int_equal(eval_family(c, "unknown", AF_INET6, MH_COND_CONNECT), DYN);
	assert_int_equal(eval_family(c, "dhcp7.example.org", AF_INET6, MH_COND_CONNECT), DYN);
	assert_int_equal(eval_family(c, "mail.example.com", AF_INET6, MH_COND_CONNECT), STATIC);
	assert_int_equal(eval_family(c, "[IPv6:2001:db8::25]", AF_UNSPEC, MH_COND_CONNECT), DYN);
	mh_cond_free(c);

	const struct opt_spec t[] = {{"ipv4_only", 12, {"true"}}};
	c = make_ok(t, 1);
	assert_int_equal(eval_family(c, "unknown", AF_INET6, MH_COND_CONNECT), STATIC);
	assert_int_equal(eval_family(c, "unknown", AF_INET, MH_COND_CONNECT), DYN);
	mh_cond_free(c);
}

static void expect_error(const struct opt_spec *o, size_t n, const char *want)
{
	char err[256] = "";
	struct mh_cond *c = make(o, n, err, sizeof(err));
	if (c != NULL) {
		mh_cond_free(c);
		fail_msg("no error, wanted \"%s\"", want);
	}
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void bad_regex_names_file_line_and_key(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"whitelist", 3, {"example.org"}},
	    {"blacklist", 12, {"example.com", "/mx(/"}},
	};
	expect_error(o, 2, "milterhub.lua:12: condition \"s25r\": 'blacklist': bad regex /mx(/");
	const struct opt_spec unterminated[] = {{"whitelist", 13, {"/mx"}}};
	expect_error(unterminated, 1,
	             "milterhub.lua:13: condition \"s25r\": 'whitelist': bad regex");
	const struct opt_spec empty_re[] = {{"whitelist", 14, {"//"}}};
	expect_error(empty_re, 1, "milterhub.lua:14: condition \"s25r\": 'whitelist': bad regex");
	const struct opt_spec empty[] = {{"whitelist", 15, {""}}};
	expect_error(empty, 1, "milterhub.lua:15: condition \"s25r\": 'whitelist': bad entry ''");
	const struct opt_spec dot[] = {{"blacklist", 16, {"."}}};
	expect_error(dot, 1, "milterhub.lua:16: condition \"s25r\": 'blacklist': bad entry '.'");
}

static void unknown_key_and_bad_boolean_are_errors(void **state)
{
	(void)state;
	const struct opt_spec o[] = {
	    {"ipv4_only", 20, {"true"}},
	    {"whitlist", 21, {"example.com"}},
	};
	expect_error(o, 2, "milterhub.lua:21: condition \"s25r\": unknown key 'whitlist'");
	const struct opt_spec b[] = {{"default_whitelist", 22, {"yes"}}};
	expect_error(b, 1,
	             "milterhub.lua:22: condition \"s25r\": 'default_whitelist': expected true or "
	             "false");
	const struct opt_spec two[] = {{"ipv4_only", 23, {"true", "false"}}};
	expect_error(two, 1, "milterhub.lua:23: condition \"s25r\": 'ipv4_only': expected true");
	/* A NULL err buffer is allowed: the reason is dropped. */
	struct mh_cond_opt opt = {.key = "nope", .values = NULL, .nvalues = 0, .line = 1};
	struct mh_cond_opts opts = {.file = "f.lua", .opts = &opt, .nopts = 1};
	assert_null(mh_cond_s25r_new(&opts, NULL, 0));
}

static void empty_options_and_empty_lists_are_fine(void **state)
{
	(void)state;
	struct mh_cond_opts none = {.file = "f.lua", .opts = NULL, .nopts = 0};
	char err[64] = "x";
	struct mh_cond *c = mh_cond_s25r_new(&none, err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(err, "");
	expect(c, "dhcp7.example.org", DYN);
	mh_cond_free(c);
	const struct opt_spec o[] = {{"whitelist", 1, {NULL}}, {"blacklist", 2, {NULL}}};
	c = make_ok(o, 2);
	expect(c, "mail.example.com", STATIC);
	mh_cond_free(c);
}

static void registry_knows_s25r(void **state)
{
	(void)state;
	assert_true(mh_cond_builtin_known("s25r"));
	const char *const wl[] = {"example.net"};
	struct mh_cond_opt opt = {.key = "whitelist", .values = wl, .nvalues = 1, .line = 30};
	struct mh_cond_opts opts = {.file = "milterhub.lua", .opts = &opt, .nopts = 1};
	char err[256] = "";
	struct mh_cond *c = mh_cond_builtin_new("s25r", &opts, err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(c->ops->type, "s25r");
	expect(c, "dhcp7.example.net", STATIC);
	expect(c, "dhcp7.example.org", DYN);
	mh_cond_free(c);
	opt.key = "ipv6_only";
	assert_null(mh_cond_builtin_new("s25r", &opts, err, sizeof(err)));
	assert_string_equal(err, "milterhub.lua:30: condition \"s25r\": unknown key 'ipv6_only'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(host_table_gives_published_verdicts),
	    cmocka_unit_test(missing_name_looks_dynamic),
	    cmocka_unit_test(decides_at_every_stage_never_undecided),
	    cmocka_unit_test(whitelist_beats_blacklist),
	    cmocka_unit_test(whitelist_rescues_dynamic_looking_host),
	    cmocka_unit_test(blacklist_beats_default_whitelist),
	    cmocka_unit_test(regex_entries_are_extended_and_case_insensitive),
	    cmocka_unit_test(default_whitelist_false_drops_the_table),
	    cmocka_unit_test(ipv6_skipped_unless_ipv4_only_false),
	    cmocka_unit_test(bad_regex_names_file_line_and_key),
	    cmocka_unit_test(unknown_key_and_bad_boolean_are_errors),
	    cmocka_unit_test(empty_options_and_empty_lists_are_fine),
	    cmocka_unit_test(registry_knows_s25r),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
