/*
 * test_cond_net - the "remote-network" condition (design §2.7) and the
 * CIDR matcher under it: loopback, private and link-local clients are
 * local, IPv4-mapped IPv6 counts as IPv4, `local` adds networks, `remote`
 * wins over everything, and every bad option names its line and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cond_testutil.h"
#include "conditions/mh_cidr.h"
#include "conditions/mh_cond_builtin.h"

/* The verdict of c for a client at addr of the given family. */
static enum mh_cond_verdict verdict_for(const struct mh_cond *c, int family, const char *addr)
{
	struct ct_ctx t;

	ct_ctx_init(&t, MH_COND_CONNECT);
	t.ctx.client_family = family;
	t.ctx.client_addr = addr;
	return c->ops->eval(c, &t.ctx);
}

#define REMOTE(c, fam, a) assert_int_equal(verdict_for(c, fam, a), MH_COND_APPLIES)
#define LOCAL(c, fam, a) assert_int_equal(verdict_for(c, fam, a), MH_COND_NOT_APPLICABLE)

static struct mh_cond *plain(void)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c = mh_cond_remote_network_new(ct_opts(&b, NULL), err, sizeof(err));

	assert_non_null(c);
	assert_string_equal(c->ops->type, "remote-network");
	return c;
}

static void public_ipv4_is_remote_private_ranges_are_not(void **state)
{
	struct mh_cond *c = plain();

	(void)state;
	REMOTE(c, AF_INET, "8.8.8.8");
	REMOTE(c, AF_INET, "192.0.2.1");
	LOCAL(c, AF_INET, "127.0.0.1");
	LOCAL(c, AF_INET, "127.255.255.254");
	LOCAL(c, AF_INET, "10.1.2.3");
	LOCAL(c, AF_INET, "172.16.0.1");
	LOCAL(c, AF_INET, "172.31.255.255");
	REMOTE(c, AF_INET, "172.32.0.1");
	REMOTE(c, AF_INET, "172.15.255.255");
	LOCAL(c, AF_INET, "192.168.1.1");
	REMOTE(c, AF_INET, "192.169.0.1");
	LOCAL(c, AF_INET, "169.254.10.20");
	REMOTE(c, AF_INET, "[198.51.100.7]");
	ct_free(c);
}

static void ipv6_loopback_ula_link_local_are_local(void **state)
{
	struct mh_cond *c = plain();

	(void)state;
	REMOTE(c, AF_INET6, "2001:db8::1");
	REMOTE(c, AF_INET6, "IPv6:2a00:1450:4001::1");
	LOCAL(c, AF_INET6, "::1");
	LOCAL(c, AF_INET6, "fd12:3456::1");
	LOCAL(c, AF_INET6, "fc00::1");
	REMOTE(c, AF_INET6, "fe00::1");
	LOCAL(c, AF_INET6, "fe80::1");
	LOCAL(c, AF_INET6, "fe80::1%eth0");
	LOCAL(c, AF_INET6, "febf::1");
	REMOTE(c, AF_INET6, "fec0::1");
	ct_free(c);
}

static void ipv4_mapped_ipv6_is_treated_as_ipv4(void **state)
{
	struct mh_cond *c = plain();

	(void)state;
	LOCAL(c, AF_INET6, "::ffff:10.0.0.1");
	LOCAL(c, AF_INET6, "::ffff:127.0.0.1");
	LOCAL(c, AF_INET6, "::FFFF:192.168.0.9");
	REMOTE(c, AF_INET6, "::ffff:8.8.8.8");
	ct_free(c);
}

static void unix_unknown_or_unparsable_client_is_local(void **state)
{
	struct mh_cond *c = plain();

	(void)state;
	LOCAL(c, AF_UNIX, NULL);
	LOCAL(c, AF_UNSPEC, NULL);
	LOCAL(c, AF_UNIX, "8.8.8.8");
	LOCAL(c, AF_INET, NULL);
	LOCAL(c, AF_INET, "not-an-address");
	LOCAL(c, AF_INET, "");
	ct_free(c);
}

static void local_list_adds_networks(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c = mh_cond_remote_network_new(
	    ct_opts(&b, "local", 3, "192.0.2.0/24", "198.51.100.7", "2001:db8:1::/48", NULL, NULL),
	    err, sizeof(err));

	(void)state;
	assert_non_null(c);
	LOCAL(c, AF_INET, "192.0.2.200");
	LOCAL(c, AF_INET6, "::ffff:192.0.2.9");
	LOCAL(c, AF_INET, "198.51.100.7");
	REMOTE(c, AF_INET, "198.51.100.8");
	REMOTE(c, AF_INET, "192.0.3.1");
	LOCAL(c, AF_INET6, "2001:db8:1:2::1");
	REMOTE(c, AF_INET6, "2001:db8:2::1");
	LOCAL(c, AF_INET, "10.0.0.1"); /* built-ins still hold */
	ct_free(c);
}

/* "local" is a Lua keyword: local_networks / remote_networks say the same. */
static void networks_spellings_mean_local_and_remote(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c =
	    mh_cond_remote_network_new(ct_opts(&b, "local_networks", 3, "192.0.2.0/24", NULL,
	                                       "remote_networks", 4, "10.9.0.0/16", NULL, NULL),
	                               err, sizeof(err));

	(void)state;
	assert_non_null(c);
	LOCAL(c, AF_INET, "192.0.2.200");
	REMOTE(c, AF_INET, "10.9.1.1");
	REMOTE(c, AF_INET, "192.0.3.1");
	ct_free(c);
	assert_null(
	    mh_cond_remote_network_new(ct_opts(&b, "local", 3, "192.0.2.0/24", NULL,
	                                       "local_networks", 4, "10.0.0.0/8", NULL, NULL),
	                               err, sizeof(err)));
	assert_non_null(strstr(err, "not both"));
}

static void remote_list_wins_over_private_and_local(void **state)
{
	struct ct_opts b;
	char err[256] = "";
	struct mh_cond *c =
	    mh_cond_remote_network_new(ct_opts(&b, "remote", 2, "10.8.0.0/16", "fd00:1::/32", NULL,
	                                       "local", 3, "10.8.9.0/24", NULL, NULL),
	                               err, sizeof(err));

	(void)state;
	assert_non_null(c);
	REMOTE(c, AF_INET, "10.8.1.1");
	REMOTE(c, AF_INET, "10.8.9.1");
	LOCAL(c, AF_INET, "10.9.0.1");
	REMOTE(c, AF_INET6, "fd00:1:ffff::1");
	LOCAL(c, AF_INET6, "fd00:2::1");
	ct_free(c);
}

static void cidr_prefixes_match_bit_by_bit(void **state)
{
	struct mh_cidr p;
	unsigned char a[16];

	(void)state;
	assert_int_equal(mh_cidr_parse("10.1.2.3/8", &p, NULL, 0), 0); /* host bits cleared */
	assert_int_equal(mh_cidr_addr_parse("10.200.0.1", a), 0);
	assert_true(mh_cidr_match(&p, a));
	assert_int_equal(mh_cidr_parse("0.0.0.0/0", &p, NULL, 0), 0);
	assert_true(mh_cidr_match(&p, a));
	assert_int_equal(mh_cidr_addr_parse("2001:db8::1", a), 0);
	assert_false(mh_cidr_match(&p, a)); /* an IPv4 prefix never holds IPv6 */
	assert_int_equal(mh_cidr_parse("::/0", &p, NULL, 0), 0);
	assert_true(mh_cidr_match(&p, a));
	assert_int_equal(mh_cidr_parse("198.51.100.7", &p, NULL, 0), 0);
	assert_int_equal(p.prefix, 128);
	assert_int_equal(mh_cidr_parse("192.0.2.128/25", &p, NULL, 0), 0);
	assert_int_equal(mh_cidr_addr_parse("192.0.2.127", a), 0);
	assert_false(mh_cidr_match(&p, a));
	assert_int_equal(mh_cidr_addr_parse("192.0.2.128", a), 0);
	assert_true(mh_cidr_match(&p, a));
	assert_int_equal(mh_cidr_parse("2001:db8::/127", &p, NULL, 0), 0);
	assert_int_equal(mh_cidr_addr_parse("2001:db8::1", a), 0);
	assert_true(mh_cidr_match(&p, a));
	assert_int_equal(mh_cidr_addr_parse("2001:db8::2", a), 0);
	assert_false(mh_cidr_match(&p, a));
}

/* Creating with one option (key at line 7) fails with exactly want. */
static void expect_error(const char *key, const char *value, const char *want)
{
	struct ct_opts b;
	char err[256] = "";

	assert_null(
	    mh_cond_remote_network_new(ct_opts(&b, key, 7, value, NULL, NULL), err, sizeof(err)));
	assert_string_equal(err, want);
}

static void bad_options_name_line_and_key(void **state)
{
	(void)state;
	expect_error("lcoal", "10.0.0.0/8",
	             "test.lua:7: condition \"remote-network\": unknown key 'lcoal'");
	expect_error("local", "10.0.0.0/33",
	             "test.lua:7: condition \"remote-network\": key 'local': bad prefix length in "
	             "'10.0.0.0/33'");
	expect_error("local", "10.0.0.0/",
	             "test.lua:7: condition \"remote-network\": key 'local': bad prefix length in "
	             "'10.0.0.0/'");
	expect_error("local", "10.0.0.0/8x",
	             "test.lua:7: condition \"remote-network\": key 'local': bad prefix length in "
	             "'10.0.0.0/8x'");
	expect_error("local", "10.0.0.0/-1",
	             "test.lua:7: condition \"remote-network\": key 'local': bad prefix length in "
	             "'10.0.0.0/-1'");
	expect_error("remote", "::1/129",
	             "test.lua:7: condition \"remote-network\": key 'remote': bad prefix length in "
	             "'::1/129'");
	expect_error("remote", "10.0/8",
	             "test.lua:7: condition \"remote-network\": key 'remote': bad address in "
	             "'10.0/8'");
	expect_error("local", "example.com",
	             "test.lua:7: condition \"remote-network\": key 'local': bad address in "
	             "'example.com'");
	expect_error("local", "",
	             "test.lua:7: condition \"remote-network\": key 'local': bad address in ''");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(public_ipv4_is_remote_private_ranges_are_not),
	    cmocka_unit_test(ipv6_loopback_ula_link_local_are_local),
	    cmocka_unit_test(ipv4_mapped_ipv6_is_treated_as_ipv4),
	    cmocka_unit_test(unix_unknown_or_unparsable_client_is_local),
	    cmocka_unit_test(local_list_adds_networks),
	    cmocka_unit_test(networks_spellings_mean_local_and_remote),
	    cmocka_unit_test(remote_list_wins_over_private_and_local),
	    cmocka_unit_test(cidr_prefixes_match_bit_by_bit),
	    cmocka_unit_test(bad_options_name_line_and_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
