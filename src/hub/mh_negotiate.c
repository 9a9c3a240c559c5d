/*
 * NAME
 *	mh_negotiate 3
 * SUMMARY
 *	merge the children's option negotiation into the hub's (design §2.4)
 * SYNOPSIS
 *	#include "hub/mh_negotiate.h"
 *
 *	int	mh_negotiate_merge(const struct mh_optneg *offer,
 *			const struct mh_optneg *const *children, size_t n,
 *			const char *const *hub_macros, struct mh_optneg *reply,
 *			struct mh_negotiate_macros *macros);
 *	void	mh_negotiate_macros_free(struct mh_negotiate_macros *m);
 *	const char *mh_negotiate_default_macros(enum mh_macro_stage stage);
 *
 *	void	mh_negotiate_plan_child(const struct mh_optneg *reply,
 *			const struct mh_optneg *child,
 *			struct mh_negotiate_child *out);
 *	void	mh_negotiate_child_free(struct mh_negotiate_child *c);
 *	bool	mh_negotiate_child_wants_macro(
 *			const struct mh_negotiate_child *c,
 *			enum mh_macro_stage stage, const char *name);
 * DESCRIPTION
 *	To the MTA the hub is one milter; to each child it is the MTA. The
 *	hub first negotiates with every child (offering them what the MTA
 *	offered), then answers the MTA with mh_negotiate_merge(), then
 *	serves each child by its mh_negotiate_plan_child() plan.
 *
 *	mh_negotiate_merge() asks the MTA for every event, whatever the
 *	children want, because conditions may decide at any stage; every
 *	action the MTA offers, because the children's edits are forwarded
 *	(each checked against what that child negotiated); a no-reply step
 *	only when no child answers it; a feature when some child uses it.
 *	Macro lists: a list replaces the MTA's configured list for its stage,
 *	so a child that sent none must still get the MTA's defaults once
 *	another child's list is in force; the union therefore takes the
 *	defaults in place of a missing list. Defaults are Postfix's (see
 *	mh_negotiate_default_macros); an empty list counts as none, as
 *	Postfix reads it. Lists are split on spaces, tabs and commas (as both
 *	MTAs accept), deduplicated by exact spelling (Postfix looks up "i",
 *	not "{i}", so both spellings are kept if both are asked for) and
 *	joined with one space.
 *
 *	mh_negotiate_plan_child() turns a child's reply into what the hub
 *	does for it; mh_negotiate_child_wants_macro() filters the MTA's
 *	macros for it, matching "x" and "{x}" alike.
 * OWNERSHIP
 *	The union lists and the plans' lists are allocated here (mh_x*:
 *	allocation succeeds or aborts) and released by the two free
 *	functions, which leave an empty, re-freeable struct. Nothing keeps a
 *	pointer into the offer or the children's replies.
 * DIAGNOSTICS
 *	mh_negotiate_merge() returns MH_CODEC_EVALUE for an offer below
 *	version 2. A NULL child is an assertion failure.
 * SEE ALSO
 *	../shared/docs/design.md §2.4, milter-protocol.md §4 and §5.1,
 *	reference-behaviour.md §2.3
 */
#include "hub/mh_negotiate.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/mh_buf.h"

#define NEG_MAX_VERSION 6u
#define NEG_MIN_VERSION 2u
/* libmilter's reading of an offer of 0 actions / 0 protocol bits. */
#define NEG_V1_ACTIONS 0x0Fu
#define NEG_V1_PROTOCOL 0x3Fu

/*
 * Postfix's defaults (milter-protocol.md §5.1, Postfix >= 3.5), indexed
 * by SMFIM number. The hub cannot know the MTA's real configuration;
 * these are what a stock Postfix sends a milter that asked for no list.
 */
static const char *const postfix_default_macros[MH_STAGE_COUNT] = {
    [MH_STAGE_CONNECT] = "j {daemon_name} {daemon_addr} v _",
    [MH_STAGE_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    [MH_STAGE_MAIL] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
                      "{mail_mailer}",
    [MH_STAGE_RCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    [MH_STAGE_DATA] = "i",
    [MH_STAGE_EOM] = "i",
    [MH_STAGE_EOH] = "i",
};

const char *mh_negotiate_default_macros(enum mh_macro_stage stage)
{
	return (unsigned int)stage < MH_STAGE_COUNT ? postfix_default_macros[stage] : "";
}

/* Next name in a list: sets *name and *len; 0 at the end. */
static int next_name(const char **cursor, const char **name, size_t *len)
{
	const char *s = *cursor;

	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == '\0') {
		*cursor = s;
		return 0;
	}
	*name = s;
	while (*s != '\0' && *s != ' ' && *s != '\t' && *s != ',')
		s++;
	*len = (size_t)(s - *name);
	*cursor = s;
	return 1;
}

/* A list that names nothing counts as absent (Postfix: "use main.cf"). */
static int list_empty(const char *list)
{
	const char *name;
	size_t len;

	return list == NULL || !next_name(&list, &name, &len);
}

/* The child's own list for a stage, NULL when it sent none (or below v6). */
static const char *child_list(const struct mh_optneg *child, int stage)
{
	if (child->version < NEG_MAX_VERSION || list_empty(child->macros[stage]))
		return NULL;
	return child->macros[stage];
}

/* Whether buf's space-joined names contain name[0..len) exactly. */
static int buf_has(const struct mh_buf *b, const char *name, size_t len)
{
	const char *cursor = (const char *)mh_buf_head(b);
	const char *have;
	size_t have_len;

	if (mh_buf_size(b) == 0)
		return 0;
	while (next_name(&cursor, &have, &have_len))
		if (have_len == len && memcmp(have, name, len) == 0)
			return 1;
	return 0;
}

/* Append list's names not yet in b, one space apart. */
static void union_add(struct mh_buf *b, const char *list)
{
	const char *name;
	size_t len;

	if (list == NULL)
		return;
	while (next_name(&list, &name, &len)) {
		if (buf_has(b, name, len))
			continue;
		if (mh_buf_size(b) != 0)
			mh_buf_append_byte(b, ' ');
		mh_buf_append(b, name, len);
	}
}

/* Owned copy of b's content, or NULL when it is empty. */
static char *buf_take(const struct mh_buf *b)
{
	if (mh_buf_size(b) == 0)
		return NULL;
	return mh_xstrndup((const char *)mh_buf_head(b), mh_buf_size(b));
}

void mh_negotiate_macros_free(struct mh_negotiate_macros *m)
{
	int stage;

	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		free(m->list[stage]);
		m->list[stage] = NULL;
	}
}

static void merge_macros(const struct mh_optneg *const *children, size_t n,
                         const char *const *hub_macros, struct mh_negotiate_macros *macros)
{
	struct mh_buf b = MH_BUF_INIT;
	int stage;
	size_t i;

	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		int some_list = hub_macros != NULL && !list_empty(hub_macros[stage]);

		for (i = 0; i < n; i++)
			some_list |= child_list(children[i], stage) != NULL;
		if (!some_list)
			continue; /* the MTA's configured list serves everyone */
		mh_buf_reset(&b);
		/* design §2.4: a child without a list keeps the MTA's defaults. */
		for (i = 0; i < n; i++) {
			const char *own = child_list(children[i], stage);

			union_add(&b, own != NULL ? own : postfix_default_macros[stage]);
		}
		if (hub_macros != NULL)
			union_add(&b, hub_macros[stage]);
		macros->list[stage] = buf_take(&b);
	}
	mh_buf_free(&b);
}

int mh_negotiate_merge(const struct mh_optneg *offer, const struct mh_optneg *const *children,
                       size_t n, const char *const *hub_macros, struct mh_optneg *reply,
                       struct mh_negotiate_macros *macros)
{
	uint32_t offered_proto;
	uint32_t every = MH_NEG_NOREPLY_BITS;
	uint32_t any = 0;
	struct mh_optneg r;
	size_t i;
	int stage;

	memset(&r, 0, sizeof(r));
	memset(macros, 0, sizeof(*macros));
	if (offer->version < NEG_MIN_VERSION) {
		*reply = r;
		return MH_CODEC_EVALUE;
	}
	r.version = offer->version < NEG_MAX_VERSION ? offer->version : NEG_MAX_VERSION;
	/* design §2.4: every offered action; each child's edits are checked by the hub. */
	r.actions = offer->actions != 0 ? offer->actions : NEG_V1_ACTIONS;
	/* Bits beyond the v6 set (MDS sizes, test) would let the MTA send
	 * frames larger than the hub reads; never ask for them. */
	offered_proto =
	    (offer->protocol != 0 ? offer->protocol : NEG_V1_PROTOCOL) & (uint32_t)MH_PROTO_V6_MASK;
	if (n == 0) {
		r.protocol = offered_proto & ~(uint32_t)MH_NEG_EVENT_BITS;
		*reply = r;
		return MH_CODEC_OK;
	}
	for (i = 0; i < n; i++) {
		assert(children[i] != NULL);
		every &= children[i]->protocol;
		any |= children[i]->protocol;
	}
	/* design §2.4: all events; NR only if every child, features if any. */
	r.protocol = offered_proto & ((every & MH_NEG_NOREPLY_BITS) | (any & MH_NEG_FEATURE_BITS));
	if (r.version >= NEG_MAX_VERSION && (r.actions & MH_ACT_SETSYMLIST) != 0) {
		merge_macros(children, n, hub_macros, macros);
		for (stage = 0; stage < MH_STAGE_COUNT; stage++)
			r.macros[stage] = macros->list[stage];
	}
	*reply = r;
	return MH_CODEC_OK;
}

/* Owned copy of a list, normalised to names one space apart. */
static char *list_copy(const char *list)
{
	struct mh_buf b = MH_BUF_INIT;
	char *copy;

	union_add(&b, list);
	copy = buf_take(&b);
	mh_buf_free(&b);
	return copy != NULL ? copy : mh_xstrdup("");
}

void mh_negotiate_plan_child(const struct mh_optneg *reply, const struct mh_optneg *child,
                             struct mh_negotiate_child *out)
{
	bool mta_leadspc = (reply->protocol & MH_PROTO_HDR_LEADSPC) != 0;
	bool child_leadspc = (child->protocol & MH_PROTO_HDR_LEADSPC) != 0;
	int stage;

	memset(out, 0, sizeof(*out));
	out->version = child->version;
	out->actions = child->actions;
	out->no_events = child->protocol & MH_NEG_EVENT_BITS;
	/* As Postfix and Sendmail do: 'U' exists from version 3, 'T' from 4. */
	if (child->version < 3)
		out->no_events |= MH_PROTO_NOUNKNOWN;
	if (child->version < 4)
		out->no_events |= MH_PROTO_NODATA;
	/* Not masked by version: a child that says it will not answer must
	 * not be waited for, whatever its version claims. */
	out->no_reply = child->protocol & MH_NEG_NOREPLY_BITS;
	out->skip = (child->protocol & MH_PROTO_SKIP) != 0;
	/* The MTA sends rejected RCPTs if any child asked; only those get them. */
	out->rejected_rcpts = (child->protocol & reply->protocol & MH_PROTO_RCPT_REJ) != 0;
	/* design §2.4: convert where the MTA and the child differ. */
	if (mta_leadspc && !child_leadspc)
		out->leadspc = MH_LEADSPC_STRIP_TO_CHILD;
	else if (!mta_leadspc && child_leadspc)
		out->leadspc = MH_LEADSPC_ADD_TO_CHILD;
	else
		out->leadspc = MH_LEADSPC_NONE;
	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		const char *own = child_list(child, stage);

		if (own != NULL)
			out->macros[stage] = list_copy(own);
		else if (reply->macros[stage] != NULL)
			out->macros[stage] = list_copy(postfix_default_macros[stage]);
		/* else NULL: the MTA sends its configured list, forward it all */
	}
}

void mh_negotiate_child_free(struct mh_negotiate_child *c)
{
	int stage;

	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		free(c->macros[stage]);
		c->macros[stage] = NULL;
	}
}

/* name[0..len) without the braces of "{x}". */
static void bare_name(const char **name, size_t *len)
{
	if (*len >= 2 && (*name)[0] == '{' && (*name)[*len - 1] == '}') {
		(*name)++;
		*len -= 2;
	}
}

bool mh_negotiate_child_wants_macro(const struct mh_negotiate_child *c, enum mh_macro_stage stage,
                                    const char *name)
{
	const char *cursor;
	const char *have;
	size_t have_len;
	size_t len = strlen(name);

	if ((unsigned int)stage >= MH_STAGE_COUNT)
		return false;
	cursor = c->macros[stage];
	if (cursor == NULL)
		return true;
	bare_name(&name, &len);
	while (next_name(&cursor, &have, &have_len)) {
		bare_name(&have, &have_len);
		if (have_len == len && memcmp(have, name, len) == 0)
			return true;
	}
	return false;
}
