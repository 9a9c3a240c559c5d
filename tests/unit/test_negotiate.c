/*
 * test_negotiate - the negotiation merge of design §2.4
 * (hub/mh_negotiate.h): what the hub asks the MTA for, given the MTA's
 * offer and its children's replies, and what it then does for each child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hub/mh_negotiate.h"

#define ALL_PROTO ((uint32_t)MH_PROTO_V6_MASK)
#define ALL_NR ((uint32_t)MH_NEG_NOREPLY_BITS)

/* What Postfix sends with milter_protocol = 6 (milter-protocol.md §4.1). */
static const struct mh_optneg postfix_offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};

/* A libmilter child with SMFIS_ALL_OPTS-like flags and no macro lists. */
static struct mh_optneg child(uint32_t protocol)
{
	struct mh_optneg c = {6, MH_ACT_V6_MASK, protocol, {NULL}};

	return c;
}

struct result {
	struct mh_optneg reply;
	struct mh_negotiate_macros macros;
};

static void merge(struct result *r, const struct mh_optneg *offer, const struct mh_optneg *kids,
                  size_t n, const char *const *hub_macros)
{
	const struct mh_optneg *ptr[8];
	size_t i;

	assert_true(n <= 8);
	for (i = 0; i < n; i++)
		ptr[i] = &kids[i];
	assert_int_equal(mh_negotiate_merge(offer, ptr, n, hub_macros, &r->reply, &r->macros),
	                 MH_CODEC_OK);
}

static void result_free(struct result *r)
{
	mh_negotiate_macros_free(&r->macros);
}

static void version_is_min_of_6_and_offer(void **state)
{
	struct mh_optneg offer = postfix_offer;
	struct mh_optneg kid = child(0);
	struct result r;

	(void)state;
	offer.version = 7;
	merge(&r, &offer, &kid, 1, NULL);
	assert_int_equal(r.reply.version, 6);
	result_free(&r);

	offer.version = 2;
	offer.protocol = MH_PROTO_V2_MASK;
	kid.version = 2;
	merge(&r, &offer, &kid, 1, NULL);
	assert_int_equal(r.reply.version, 2);
	result_free(&r);
}

static void offer_below_version_2_is_refused(void **state)
{
	struct mh_optneg offer = postfix_offer;
	struct mh_optneg reply;
	struct mh_negotiate_macros macros;

	(void)state;
	offer.version = 1;
	assert_int_equal(mh_negotiate_merge(&offer, NULL, 0, NULL, &reply, &macros),
	                 MH_CODEC_EVALUE);
	assert_int_equal(reply.version, 0);
	mh_negotiate_macros_free(&macros);
}

static void actions_are_everything_the_mta_offered(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct mh_optneg offer = postfix_offer;
	struct result r;

	(void)state;
	kids[0].actions = MH_ACT_ADDHDRS;
	kids[1].actions = 0;
	merge(&r, &offer, kids, 2, NULL);
	assert_int_equal(r.reply.actions, MH_ACT_V6_MASK);
	result_free(&r);

	offer.actions = MH_ACT_ADDHDRS | MH_ACT_CHGHDRS;
	merge(&r, &offer, kids, 2, NULL);
	assert_int_equal(r.reply.actions, MH_ACT_ADDHDRS | MH_ACT_CHGHDRS);
	result_free(&r);

	offer.actions = 0; /* libmilter reads an offer of 0 as 0x0F */
	merge(&r, &offer, kids, 2, NULL);
	assert_int_equal(r.reply.actions, 0x0F);
	result_free(&r);
}

static void event_bits_never_requested(void **state)
{
	struct mh_optneg kids[2] = {child(MH_NEG_EVENT_BITS), child(MH_NEG_EVENT_BITS)};
	struct result r;

	(void)state;
	merge(&r, &postfix_offer, kids, 2, NULL);
	assert_int_equal(r.reply.protocol & MH_NEG_EVENT_BITS, 0);
	result_free(&r);
}

static void no_reply_flag_only_when_every_child_asks(void **state)
{
	struct mh_optneg kids[3] = {
	    child(MH_PROTO_NR_CONN | MH_PROTO_NR_HELO | MH_PROTO_NR_HDR),
	    child(MH_PROTO_NR_CONN | MH_PROTO_NR_HDR),
	    child(MH_PROTO_NR_CONN | MH_PROTO_NR_HELO | MH_PROTO_NR_HDR | MH_PROTO_NR_BODY),
	};
	struct result r;

	(void)state;
	merge(&r, &postfix_offer, kids, 3, NULL);
	assert_int_equal(r.reply.protocol & ALL_NR, MH_PROTO_NR_CONN | MH_PROTO_NR_HDR);
	result_free(&r);

	merge(&r, &postfix_offer, kids, 1, NULL);
	assert_int_equal(r.reply.protocol & ALL_NR,
	                 MH_PROTO_NR_CONN | MH_PROTO_NR_HELO | MH_PROTO_NR_HDR);
	result_free(&r);
}

static void no_reply_flag_not_requested_unless_offered(void **state)
{
	struct mh_optneg offer = postfix_offer;
	struct mh_optneg kids[2] = {child(ALL_NR), child(ALL_NR)};
	struct result r;

	(void)state;
	offer.protocol = ALL_PROTO & ~(uint32_t)MH_PROTO_NR_RCPT;
	merge(&r, &offer, kids, 2, NULL);
	assert_int_equal(r.reply.protocol & ALL_NR, ALL_NR & ~(uint32_t)MH_PROTO_NR_RCPT);
	result_free(&r);
}

static void skip_rcptrej_leadspc_when_any_child_asks(void **state)
{
	struct mh_optneg kids[3] = {child(MH_PROTO_SKIP), child(0),
	                            child(MH_PROTO_RCPT_REJ | MH_PROTO_HDR_LEADSPC)};
	struct result r;

	(void)state;
	merge(&r, &postfix_offer, kids, 3, NULL);
	assert_int_equal(r.reply.protocol, MH_NEG_FEATURE_BITS);
	result_free(&r);

	merge(&r, &postfix_offer, kids + 1, 1, NULL);
	assert_int_equal(r.reply.protocol, 0);
	result_free(&r);
}

static void feature_flag_not_requested_unless_offered(void **state)
{
	struct mh_optneg offer = postfix_offer;
	struct mh_optneg kid = child(MH_NEG_FEATURE_BITS);
	struct result r;

	(void)state;
	offer.protocol = ALL_PROTO & ~(uint32_t)(MH_PROTO_SKIP | MH_PROTO_HDR_LEADSPC);
	merge(&r, &offer, &kid, 1, NULL);
	assert_int_equal(r.reply.protocol, MH_PROTO_RCPT_REJ);
	result_free(&r);
}

static void bits_outside_v6_set_never_requested(void **state)
{
	struct mh_optneg offer = postfix_offer;
	struct mh_optneg kid = child(0x70000000u | 0x80000000u | MH_PROTO_SKIP);
	struct result r;

	(void)state;
	offer.protocol = 0xF0000000u | ALL_PROTO; /* Sendmail FFR: MDS bits */
	merge(&r, &offer, &kid, 1, NULL);
	assert_int_equal(r.reply.protocol, MH_PROTO_SKIP);
	result_free(&r);
	merge(&r, &offer, NULL, 0, NULL);
	assert_int_equal(r.reply.protocol & 0xF0000000u, 0);
	result_free(&r);
}

static void zero_children_reply_is_offer_minus_event_bits(void **state)
{
	struct result r;
	const char *hub[MH_STAGE_COUNT] = {"{client_addr}", NULL, "{auth_type}"};
	int stage;

	(void)state;
	merge(&r, &postfix_offer, NULL, 0, hub);
	assert_int_equal(r.reply.version, 6);
	assert_int_equal(r.reply.actions, MH_ACT_V6_MASK);
	assert_int_equal(r.reply.protocol, ALL_PROTO & ~(uint32_t)MH_NEG_EVENT_BITS);
	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		assert_null(r.reply.macros[stage]);
		assert_null(r.macros.list[stage]);
	}
	result_free(&r);
}

static void macros_union_dedups_in_first_seen_order(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct result r;
	int stage;

	(void)state;
	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		kids[0].macros[stage] = "{a} {b} {b}";
		kids[1].macros[stage] = "{c},{b}\t{a} {d}";
	}
	merge(&r, &postfix_offer, kids, 2, NULL);
	assert_true(r.reply.actions & MH_ACT_SETSYMLIST);
	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		assert_string_equal(r.reply.macros[stage], "{a} {b} {c} {d}");
		assert_ptr_equal(r.reply.macros[stage], r.macros.list[stage]);
	}
	result_free(&r);
}

static void macros_union_keeps_defaults_for_child_without_list(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct result r;

	(void)state;
	kids[0].macros[MH_STAGE_MAIL] = "{mail_addr} {x_custom}";
	kids[1].macros[MH_STAGE_RCPT] = "{rcpt_addr}";
	merge(&r, &postfix_offer, kids, 2, NULL);
	/* child 0 sent a MAIL list, child 1 none: child 1 keeps the defaults */
	assert_string_equal(r.reply.macros[MH_STAGE_MAIL],
	                    "{mail_addr} {x_custom} i {auth_type} {auth_authen} {auth_author} "
	                    "{mail_host} {mail_mailer}");
	/* child 1 sent a RCPT list, child 0 none: defaults first (chain order) */
	assert_string_equal(r.reply.macros[MH_STAGE_RCPT],
	                    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}");
	result_free(&r);
}

static void macros_no_list_when_no_child_sends_one(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct result r;
	int stage;

	(void)state;
	kids[0].macros[MH_STAGE_HELO] = "{cipher}";
	merge(&r, &postfix_offer, kids, 2, NULL);
	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		if (stage == MH_STAGE_HELO)
			continue;
		assert_null(r.reply.macros[stage]);
	}
	assert_non_null(r.reply.macros[MH_STAGE_HELO]);
	result_free(&r);
}

static void macros_empty_list_counts_as_no_list(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct result r;

	(void)state;
	kids[0].macros[MH_STAGE_DATA] = " , ";
	kids[1].macros[MH_STAGE_DATA] = "";
	merge(&r, &postfix_offer, kids, 2, NULL);
	assert_null(r.reply.macros[MH_STAGE_DATA]);
	result_free(&r);

	kids[1].macros[MH_STAGE_DATA] = "{x}";
	merge(&r, &postfix_offer, kids, 2, NULL);
	assert_string_equal(r.reply.macros[MH_STAGE_DATA], "i {x}");
	result_free(&r);
}

static void macros_hub_additions_join_every_stage_list(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	const char *need = "{client_addr} {auth_type}";
	const char *hub[MH_STAGE_COUNT];
	struct result r;
	int stage;

	(void)state;
	for (stage = 0; stage < MH_STAGE_COUNT; stage++)
		hub[stage] = need;
	kids[0].macros[MH_STAGE_MAIL] = "{auth_type} {y}";
	kids[1].macros[MH_STAGE_MAIL] = "{z}";
	merge(&r, &postfix_offer, kids, 2, hub);
	/* every child sent a list: no defaults, the hub's names last */
	assert_string_equal(r.reply.macros[MH_STAGE_MAIL], "{auth_type} {y} {z} {client_addr}");
	/* no child sent a list: the defaults (which every child keeps) plus the hub's */
	assert_string_equal(r.reply.macros[MH_STAGE_CONNECT],
	                    "j {daemon_name} {daemon_addr} v _ {client_addr} {auth_type}");
	assert_string_equal(r.reply.macros[MH_STAGE_EOH], "i {client_addr} {auth_type}");
	result_free(&r);
}

static void macros_only_at_version_6_with_setsymlist(void **state)
{
	struct mh_optneg offer = postfix_offer;
	struct mh_optneg kid = child(0);
	const char *hub[MH_STAGE_COUNT] = {"{client_addr}"};
	struct result r;

	(void)state;
	kid.macros[MH_STAGE_CONNECT] = "{x}";
	offer.actions &= ~(uint32_t)MH_ACT_SETSYMLIST;
	kid.actions = offer.actions;
	merge(&r, &offer, &kid, 1, hub);
	assert_null(r.reply.macros[MH_STAGE_CONNECT]);
	result_free(&r);

	offer = postfix_offer;
	offer.version = 4;
	kid.version = 4;
	merge(&r, &offer, &kid, 1, hub);
	assert_null(r.reply.macros[MH_STAGE_CONNECT]);
	result_free(&r);
}

static void default_macros_are_postfix_defaults(void **state)
{
	(void)state;
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_CONNECT),
	                    "j {daemon_name} {daemon_addr} v _");
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_HELO),
	                    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}");
	assert_string_equal(
	    mh_negotiate_default_macros(MH_STAGE_MAIL),
	    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}");
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_RCPT),
	                    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}");
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_DATA), "i");
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_EOH), "i");
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_EOM), "i");
	assert_string_equal(mh_negotiate_default_macros(MH_STAGE_COUNT), "");
}

/* Merge kids[0..n), then plan kids[which]. */
static void plan(struct mh_negotiate_child *p, const struct mh_optneg *offer,
                 const struct mh_optneg *kids, size_t n, size_t which)
{
	struct result r;

	merge(&r, offer, kids, n, NULL);
	mh_negotiate_plan_child(&r.reply, &kids[which], p);
	result_free(&r); /* the plan must not point into the union */
}

static void child_plan_events_are_its_own_event_bits(void **state)
{
	struct mh_optneg kids[2] = {child(MH_PROTO_NOHELO | MH_PROTO_NOBODY | MH_PROTO_SKIP),
	                            child(0)};
	struct mh_negotiate_child p;

	(void)state;
	plan(&p, &postfix_offer, kids, 2, 0);
	assert_int_equal(p.no_events, MH_PROTO_NOHELO | MH_PROTO_NOBODY);
	assert_int_equal(p.version, 6);
	assert_int_equal(p.actions, MH_ACT_V6_MASK);
	assert_true(p.skip);
	mh_negotiate_child_free(&p);

	plan(&p, &postfix_offer, kids, 2, 1);
	assert_int_equal(p.no_events, 0);
	assert_false(p.skip);
	mh_negotiate_child_free(&p);
}

static void child_plan_omits_events_its_version_lacks(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct mh_negotiate_child p;

	(void)state;
	kids[0].version = 2;
	kids[1].version = 3;
	plan(&p, &postfix_offer, kids, 2, 0);
	assert_int_equal(p.no_events, MH_PROTO_NOUNKNOWN | MH_PROTO_NODATA);
	mh_negotiate_child_free(&p);
	plan(&p, &postfix_offer, kids, 2, 1);
	assert_int_equal(p.no_events, MH_PROTO_NODATA);
	mh_negotiate_child_free(&p);
}

static void child_plan_does_not_wait_for_its_no_reply_steps(void **state)
{
	struct mh_optneg kids[2] = {child(MH_PROTO_NR_CONN | MH_PROTO_NR_HDR), child(0)};
	struct mh_optneg offer = postfix_offer;
	struct mh_negotiate_child p;

	(void)state;
	/* even when the MTA did not offer them: the hub itself does not wait */
	offer.protocol = MH_PROTO_V2_MASK;
	plan(&p, &offer, kids, 2, 0);
	assert_int_equal(p.no_reply, MH_PROTO_NR_CONN | MH_PROTO_NR_HDR);
	mh_negotiate_child_free(&p);
}

static void rejected_rcpts_only_to_children_that_asked(void **state)
{
	struct mh_optneg kids[2] = {child(MH_PROTO_RCPT_REJ), child(0)};
	struct mh_optneg offer = postfix_offer;
	struct mh_negotiate_child p;

	(void)state;
	plan(&p, &offer, kids, 2, 0);
	assert_true(p.rejected_rcpts);
	mh_negotiate_child_free(&p);
	plan(&p, &offer, kids, 2, 1);
	assert_false(p.rejected_rcpts);
	mh_negotiate_child_free(&p);

	offer.protocol &= ~(uint32_t)MH_PROTO_RCPT_REJ; /* the MTA sends none */
	plan(&p, &offer, kids, 2, 0);
	assert_false(p.rejected_rcpts);
	mh_negotiate_child_free(&p);
}

static void leadspc_conversion_when_mta_and_child_differ(void **state)
{
	struct mh_optneg kids[2] = {child(MH_PROTO_HDR_LEADSPC), child(0)};
	struct mh_optneg offer = postfix_offer;
	struct mh_negotiate_child p;

	(void)state;
	/* the MTA gives the hub LEADSPC (child 0 asked); child 1 did not */
	plan(&p, &offer, kids, 2, 0);
	assert_int_equal(p.leadspc, MH_LEADSPC_NONE);
	mh_negotiate_child_free(&p);
	plan(&p, &offer, kids, 2, 1);
	assert_int_equal(p.leadspc, MH_LEADSPC_STRIP_TO_CHILD);
	mh_negotiate_child_free(&p);

	/* the other direction: the MTA cannot, child 0 asked */
	offer.protocol &= ~(uint32_t)MH_PROTO_HDR_LEADSPC;
	plan(&p, &offer, kids, 2, 0);
	assert_int_equal(p.leadspc, MH_LEADSPC_ADD_TO_CHILD);
	mh_negotiate_child_free(&p);
	plan(&p, &offer, kids, 2, 1);
	assert_int_equal(p.leadspc, MH_LEADSPC_NONE);
	mh_negotiate_child_free(&p);
}

static void child_plan_macros_own_list_or_defaults(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct mh_negotiate_child p;

	(void)state;
	kids[0].macros[MH_STAGE_MAIL] = "{mail_addr},{x}";
	plan(&p, &postfix_offer, kids, 2, 0);
	assert_string_equal(p.macros[MH_STAGE_MAIL], "{mail_addr} {x}");
	/* no list sent to the MTA for CONNECT: forward everything it sends */
	assert_null(p.macros[MH_STAGE_CONNECT]);
	mh_negotiate_child_free(&p);

	plan(&p, &postfix_offer, kids, 2, 1);
	assert_string_equal(p.macros[MH_STAGE_MAIL], mh_negotiate_default_macros(MH_STAGE_MAIL));
	assert_null(p.macros[MH_STAGE_CONNECT]);
	mh_negotiate_child_free(&p);
	assert_null(p.macros[MH_STAGE_MAIL]); /* free leaves it re-freeable */
	mh_negotiate_child_free(&p);
}

static void child_below_version_6_has_no_macro_list(void **state)
{
	struct mh_optneg kids[2] = {child(0), child(0)};
	struct mh_negotiate_child p;
	struct result r;

	(void)state;
	kids[0].version = 4;
	kids[0].macros[MH_STAGE_RCPT] = "{ignored}";
	kids[1].macros[MH_STAGE_RCPT] = "{rcpt_addr}";
	merge(&r, &postfix_offer, kids, 2, NULL);
	assert_string_equal(r.reply.macros[MH_STAGE_RCPT],
	                    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}");
	mh_negotiate_plan_child(&r.reply, &kids[0], &p);
	assert_string_equal(p.macros[MH_STAGE_RCPT], mh_negotiate_default_macros(MH_STAGE_RCPT));
	mh_negotiate_child_free(&p);
	result_free(&r);
}

static void child_wants_macro_matches_braced_and_bare(void **state)
{
	struct mh_optneg kids[1] = {child(0)};
	struct mh_negotiate_child p;

	(void)state;
	kids[0].macros[MH_STAGE_EOM] = "{i} j {auth_type}";
	plan(&p, &postfix_offer, kids, 1, 0);
	assert_true(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, "i"));
	assert_true(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, "{i}"));
	assert_true(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, "{j}"));
	assert_true(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, "auth_type"));
	assert_false(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, "{auth_typ}"));
	assert_false(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, "{}"));
	assert_false(mh_negotiate_child_wants_macro(&p, MH_STAGE_EOM, ""));
	/* a stage without a list: everything the MTA sends */
	assert_true(mh_negotiate_child_wants_macro(&p, MH_STAGE_CONNECT, "{anything}"));
	assert_false(mh_negotiate_child_wants_macro(&p, MH_STAGE_COUNT, "i"));
	mh_negotiate_child_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(version_is_min_of_6_and_offer),
	    cmocka_unit_test(offer_below_version_2_is_refused),
	    cmocka_unit_test(actions_are_everything_the_mta_offered),
	    cmocka_unit_test(event_bits_never_requested),
	    cmocka_unit_test(no_reply_flag_only_when_every_child_asks),
	    cmocka_unit_test(no_reply_flag_not_requested_unless_offered),
	    cmocka_unit_test(skip_rcptrej_leadspc_when_any_child_asks),
	    cmocka_unit_test(feature_flag_not_requested_unless_offered),
	    cmocka_unit_test(bits_outside_v6_set_never_requested),
	    cmocka_unit_test(zero_children_reply_is_offer_minus_event_bits),
	    cmocka_unit_test(macros_union_dedups_in_first_seen_order),
	    cmocka_unit_test(macros_union_keeps_defaults_for_child_without_list),
	    cmocka_unit_test(macros_no_list_when_no_child_sends_one),
	    cmocka_unit_test(macros_empty_list_counts_as_no_list),
	    cmocka_unit_test(macros_hub_additions_join_every_stage_list),
	    cmocka_unit_test(macros_only_at_version_6_with_setsymlist),
	    cmocka_unit_test(default_macros_are_postfix_defaults),
	    cmocka_unit_test(child_plan_events_are_its_own_event_bits),
	    cmocka_unit_test(child_plan_omits_events_its_version_lacks),
	    cmocka_unit_test(child_plan_does_not_wait_for_its_no_reply_steps),
	    cmocka_unit_test(rejected_rcpts_only_to_children_that_asked),
	    cmocka_unit_test(leadspc_conversion_when_mta_and_child_differ),
	    cmocka_unit_test(child_plan_macros_own_list_or_defaults),
	    cmocka_unit_test(child_below_version_6_has_no_macro_list),
	    cmocka_unit_test(child_wants_macro_matches_braced_and_bare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
