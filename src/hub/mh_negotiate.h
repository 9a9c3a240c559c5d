/*
 * mh_negotiate - the negotiation merge of design §2.4: from the MTA's 'O'
 * offer and the children's 'O' replies, compute the one reply the hub
 * sends to the MTA, and for each child what the hub must do for it
 * (events to send, replies not to wait for, leading-space conversion,
 * macros to forward).
 *
 * Pure: no I/O. Ownership: the merged macro lists live in a
 * struct mh_negotiate_macros (owned strings, mh_negotiate_macros_free);
 * the reply's macros[] point into it. A struct mh_negotiate_child owns
 * copies of its macro lists (mh_negotiate_child_free), so neither result
 * refers to the children's decoded replies, whose strings live in a frame
 * reader buffer that the next packet overwrites.
 */
#ifndef MH_NEGOTIATE_H
#define MH_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/mh_codec.h"

/* Event bits (NO*): never requested from the MTA (design §2.4). */
#define MH_NEG_EVENT_BITS                                                                          \
	(MH_PROTO_NOCONNECT | MH_PROTO_NOHELO | MH_PROTO_NOMAIL | MH_PROTO_NORCPT |                \
	 MH_PROTO_NOBODY | MH_PROTO_NOHDRS | MH_PROTO_NOEOH | MH_PROTO_NOUNKNOWN |                 \
	 MH_PROTO_NODATA)
/* No-reply bits (NR*): requested only when every child asked. */
#define MH_NEG_NOREPLY_BITS                                                                        \
	(MH_PROTO_NR_HDR | MH_PROTO_NR_CONN | MH_PROTO_NR_HELO | MH_PROTO_NR_MAIL |                \
	 MH_PROTO_NR_RCPT | MH_PROTO_NR_DATA | MH_PROTO_NR_UNKN | MH_PROTO_NR_EOH |                \
	 MH_PROTO_NR_BODY)
/* Feature bits: requested when any child asked. */
#define MH_NEG_FEATURE_BITS (MH_PROTO_SKIP | MH_PROTO_RCPT_REJ | MH_PROTO_HDR_LEADSPC)

/* The merged macro lists: list[stage] is owned, NULL when none is sent. */
struct mh_negotiate_macros {
	char *list[MH_STAGE_COUNT];
};

void mh_negotiate_macros_free(struct mh_negotiate_macros *m);

/*
 * Postfix's default macro list for a stage (milter-protocol.md §5.1),
 * names separated by one space; "" for a number outside 0..6. The hub
 * assumes these are what the MTA sends a milter that asked for no list.
 */
const char *mh_negotiate_default_macros(enum mh_macro_stage stage);

/*
 * Compute the hub's reply to the MTA.
 *
 * offer: the MTA's 'O'. children[0..n): the 'O' replies of the children
 * that negotiated, in chain order, each already accepted by
 * mh_optneg_check(offer, ...). hub_macros: NULL, or MH_STAGE_COUNT lists
 * (each NULL or names separated by spaces/commas) of macros the hub
 * itself needs at that stage (conditions); they are added to that
 * stage's list.
 *
 * Fills *reply and *macros (previous contents ignored; free *macros with
 * mh_negotiate_macros_free, also after an error). reply->macros[] point
 * into *macros. Returns MH_CODEC_OK, or MH_CODEC_EVALUE when the offer's
 * version is below 2 (*reply zeroed, *macros empty).
 *
 *   version  min(6, offer)
 *   actions  all offered (0 offered means 0x0F, as libmilter reads it)
 *   protocol no NO* bit; an NR* bit if offered and every child asked;
 *            SKIP, RCPT_REJ, HDR_LEADSPC if offered and any child asked;
 *            never bits outside the v6 set (MDS sizes, test)
 *   macros   per stage, only at version 6 with SETSYMLIST offered: the
 *            union in first-seen order of each child's list, where a child
 *            that sent none (or an empty one) contributes the MTA's
 *            defaults, plus hub_macros; no list when no child sent one
 *            and the hub adds nothing.
 *   n == 0   the offer minus the NO* bits (and bits outside the v6 set),
 *            no lists.
 */
int mh_negotiate_merge(const struct mh_optneg *offer, const struct mh_optneg *const *children,
                       size_t n, const char *const *hub_macros, struct mh_optneg *reply,
                       struct mh_negotiate_macros *macros);

/* Leading-space conversion between the MTA's convention and a child's. */
enum mh_leadspc {
	/* The hub and the child agree: header values pass unchanged. */
	MH_LEADSPC_NONE = 0,
	/* The MTA gave the hub HDR_LEADSPC, the child did not ask: strip one
	 * leading space from values sent to the child, add one to values in
	 * its header edits. */
	MH_LEADSPC_STRIP_TO_CHILD,
	/* The child asked for HDR_LEADSPC, the MTA did not give it: add one
	 * leading space to values sent to the child, strip one (if present)
	 * from values in its header edits. */
	MH_LEADSPC_ADD_TO_CHILD,
};

/* What the hub does for one child, from its negotiated 'O' reply. */
struct mh_negotiate_child {
	uint32_t version; /* the child's protocol version */
	uint32_t actions; /* edits it may make; the hub refuses any other */
	uint32_t no_events; /* NO* bits: events not sent to it (incl. those its
	                       version lacks: 'U' below 3, 'T' below 4) */
	uint32_t no_reply; /* NR* bits: steps it does not answer; do not wait */
	bool skip; /* it may answer BODY with 's' */
	bool rejected_rcpts; /* forward RCPTs the MTA rejected (RCPT_REJ); others
	                        must never see them */
	enum mh_leadspc leadspc;
	/* Macro names to forward per stage, owned, names separated by one
	 * space: its own list, or the MTA defaults when it sent none. NULL
	 * when the hub sent the MTA no list for that stage and the child sent
	 * none either: forward everything the MTA sends, as the MTA would. */
	char *macros[MH_STAGE_COUNT];
};

/*
 * Plan for one child: reply is the hub's reply to the MTA from
 * mh_negotiate_merge, child that child's 'O' reply. Fills *out (previous
 * contents ignored); free it with mh_negotiate_child_free.
 */
void mh_negotiate_plan_child(const struct mh_optneg *reply, const struct mh_optneg *child,
                             struct mh_negotiate_child *out);

void mh_negotiate_child_free(struct mh_negotiate_child *c);

/*
 * Whether the macro name (as the MTA sent it) is to be forwarded to the
 * child at stage; "x" and "{x}" are the same name (libmilter matches them
 * interchangeably).
 */
bool mh_negotiate_child_wants_macro(const struct mh_negotiate_child *c, enum mh_macro_stage stage,
                                    const char *name);

#endif
