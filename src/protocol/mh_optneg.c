/*
 * NAME
 *	mh_optneg 3
 * SUMMARY
 *	milter option negotiation: masks, answer, check, macro stages
 * SYNOPSIS
 *	#include "protocol/mh_codec.h"
 *
 *	uint32_t mh_optneg_action_mask(uint32_t version);
 *	uint32_t mh_optneg_protocol_mask(uint32_t version);
 *	int	mh_optneg_answer(const struct mh_optneg *offer,
 *			const struct mh_optneg *want, struct mh_optneg *reply);
 *	int	mh_optneg_check(const struct mh_optneg *offer,
 *			const struct mh_optneg *reply);
 *	uint8_t	mh_macro_stage_cmd(enum mh_macro_stage s);
 *	int	mh_macro_stage_of_cmd(uint8_t cmd);
 * DESCRIPTION
 *	The policy half of the 'O' exchange; mh_codec.c only moves the
 *	bits. Pure functions, no I/O.
 *
 *	mh_optneg_action_mask() and mh_optneg_protocol_mask() return the
 *	flags defined for a protocol version: actions 0x3F for versions
 *	2..5 and 0x1FF from 6; protocol 0x7F (v2), 0x17F (v3), 0x37F (v4,
 *	v5), 0x1FFFFF (v6 and above). Below 2 they return the version-1
 *	masks 0x0F and 0x3F, which libmilter also assumes for an offer of 0.
 *
 *	mh_optneg_answer() is the milter side, as libmilter's
 *	st_optionneg() computes it: the reply version is the lower of the
 *	two versions; an offer of 0 actions means 0x0F, of 0 protocol bits
 *	0x3F; NR bits and the NODATA/NOUNKNOWN bits that the offer lacks
 *	are dropped from what the milter wants (it must then answer those
 *	steps itself, or will simply receive them); anything else not
 *	offered is an error. Macro lists are copied for version 6 only (the
 *	pointers, not the strings). On error *reply is zeroed.
 *
 *	mh_optneg_check() is the MTA side: the reply's version must lie in
 *	2..offer version, its actions within the offer. Like Postfix it does
 *	not hold the protocol word against the offer (Sendmail does): a
 *	caller that cares masks reply->protocol with what it offered.
 *
 *	mh_macro_stage_cmd() maps an SMFIM stage number (the trailer's
 *	numbering, EOM 5 before EOH 6) to the 'D' stage byte: C H M R T E N;
 *	it returns 0 for a number outside 0..6. mh_macro_stage_of_cmd() is
 *	the inverse and returns -1 for a byte that names no stage (Postfix
 *	also sends 'L', 'B' and 'U').
 * DIAGNOSTICS
 *	MH_CODEC_EVALUE when versions or flags cannot be reconciled.
 * SEE ALSO
 *	../shared/docs/milter-protocol.md sections 4 and 5
 */

#include <string.h>

#include "protocol/mh_codec.h"

/* libmilter's SMFI_V1_ACTS and SMFI_V1_PROT, assumed for an offer of 0. */
#define OPTNEG_V1_ACTIONS 0x0Fu
#define OPTNEG_V1_PROTOCOL 0x3Fu
#define OPTNEG_MIN_VERSION 2u

/* Bits a milter may want but an older MTA lacks; libmilter drops them. */
#define OPTNEG_DROPPABLE                                                                           \
	(MH_PROTO_NR_HDR | MH_PROTO_NR_CONN | MH_PROTO_NR_HELO | MH_PROTO_NR_MAIL |                \
	 MH_PROTO_NR_RCPT | MH_PROTO_NR_DATA | MH_PROTO_NR_UNKN | MH_PROTO_NR_EOH |                \
	 MH_PROTO_NR_BODY | MH_PROTO_NODATA | MH_PROTO_NOUNKNOWN)

uint32_t mh_optneg_action_mask(uint32_t version)
{
	if (version < OPTNEG_MIN_VERSION)
		return OPTNEG_V1_ACTIONS;
	if (version < 6)
		return MH_ACT_V2_MASK;
	return MH_ACT_V6_MASK;
}

uint32_t mh_optneg_protocol_mask(uint32_t version)
{
	switch (version) {
	case 0:
	case 1:
		return OPTNEG_V1_PROTOCOL;
	case 2:
		return MH_PROTO_V2_MASK;
	case 3:
		return MH_PROTO_V3_MASK;
	case 4:
	case 5:
		return MH_PROTO_V4_MASK;
	}
	return MH_PROTO_V6_MASK;
}

static uint32_t offered_actions(const struct mh_optneg *offer)
{
	return offer->actions != 0 ? offer->actions : OPTNEG_V1_ACTIONS;
}

static uint32_t offered_protocol(const struct mh_optneg *offer)
{
	return offer->protocol != 0 ? offer->protocol : OPTNEG_V1_PROTOCOL;
}

int mh_optneg_answer(const struct mh_optneg *offer, const struct mh_optneg *want,
                     struct mh_optneg *reply)
{
	uint32_t actions = offered_actions(offer);
	uint32_t protocol = offered_protocol(offer);
	struct mh_optneg r; /* reply may alias offer or want */
	int stage;

	memset(&r, 0, sizeof(r));
	if (offer->version < OPTNEG_MIN_VERSION || want->version < OPTNEG_MIN_VERSION)
		goto refuse;
	if ((want->actions & ~actions) != 0)
		goto refuse;
	r.protocol = want->protocol & ~(OPTNEG_DROPPABLE & ~protocol);
	if ((r.protocol & ~protocol) != 0)
		goto refuse;
	r.version = want->version < offer->version ? want->version : offer->version;
	r.actions = want->actions;
	if (r.version >= 6)
		for (stage = 0; stage < MH_STAGE_COUNT; stage++)
			r.macros[stage] = want->macros[stage];
	*reply = r;
	return MH_CODEC_OK;

refuse:
	memset(reply, 0, sizeof(*reply));
	return MH_CODEC_EVALUE;
}

int mh_optneg_check(const struct mh_optneg *offer, const struct mh_optneg *reply)
{
	if (reply->version < OPTNEG_MIN_VERSION || reply->version > offer->version)
		return MH_CODEC_EVALUE;
	if ((reply->actions & ~offered_actions(offer)) != 0)
		return MH_CODEC_EVALUE;
	return MH_CODEC_OK;
}

/* Indexed by SMFIM number; note EOM (5) comes before EOH (6). */
static const uint8_t stage_cmd[MH_STAGE_COUNT] = {
    [MH_STAGE_CONNECT] = MH_CMD_CONNECT, [MH_STAGE_HELO] = MH_CMD_HELO,
    [MH_STAGE_MAIL] = MH_CMD_MAIL,       [MH_STAGE_RCPT] = MH_CMD_RCPT,
    [MH_STAGE_DATA] = MH_CMD_DATA,       [MH_STAGE_EOM] = MH_CMD_EOB,
    [MH_STAGE_EOH] = MH_CMD_EOH,
};

uint8_t mh_macro_stage_cmd(enum mh_macro_stage s)
{
	return (unsigned int)s < MH_STAGE_COUNT ? stage_cmd[s] : 0;
}

int mh_macro_stage_of_cmd(uint8_t cmd)
{
	int stage;

	for (stage = 0; stage < MH_STAGE_COUNT; stage++)
		if (stage_cmd[stage] == cmd)
			return stage;
	return -1;
}
