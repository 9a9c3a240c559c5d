/*
 * mta_reply - classification of milter replies for milterhub-mta.
 *
 * Contract: mta_reply.h. Postfix (milter8.c) takes 'p' and 'q' after any
 * command, 's' after any command and '4' anywhere; Sendmail (milter.c)
 * takes 'p' and 'q' only at end-of-message, 's' only for body chunks and
 * never '4'. Both refuse modifications outside end-of-message, 'f', and
 * an 'O' after negotiation.
 */
#include "mta_reply.h"

#include <string.h>

const char *mta_reply_code_name(uint8_t code)
{
	switch (code) {
	case MH_REP_CONTINUE:
		return "continue";
	case MH_REP_ACCEPT:
		return "accept";
	case MH_REP_REJECT:
		return "reject";
	case MH_REP_TEMPFAIL:
		return "tempfail";
	case MH_REP_DISCARD:
		return "discard";
	case MH_REP_SKIP:
		return "skip";
	case MH_REP_SHUTDOWN:
		return "shutdown";
	case MH_REP_REPLYCODE:
		return "replycode";
	case MH_REP_PROGRESS:
		return "progress";
	case MH_REP_CONN_FAIL:
		return "conn-fail";
	case MH_REP_OPTNEG:
		return "optneg";
	case MH_REP_ADDRCPT_PAR:
		return "add-rcpt-par";
	default:
		return mh_reply_is_modification(code) || code == MH_REP_QUARANTINE
		           ? mta_mod_name(code)
		           : "unknown";
	}
}

static void decision(struct mta_reply_class *out, enum mta_reply d)
{
	out->kind = MTA_RK_DECISION;
	out->decision = d;
}

void mta_reply_classify(enum mta_flavour flavour, uint8_t awaited, const struct mh_reply *r,
                        struct mta_reply_class *out)
{
	int postfix = flavour == MTA_POSTFIX;
	int at_eom = awaited == MH_CMD_EOB;

	memset(out, 0, sizeof(*out));
	out->kind = MTA_RK_UNEXPECTED;
	switch (r->code) {
	case MH_REP_CONTINUE:
		decision(out, MTA_REPLY_CONTINUE);
		return;
	case MH_REP_ACCEPT:
		decision(out, MTA_REPLY_ACCEPT);
		return;
	case MH_REP_REJECT:
		decision(out, MTA_REPLY_REJECT);
		return;
	case MH_REP_TEMPFAIL:
		decision(out, MTA_REPLY_TEMPFAIL);
		return;
	case MH_REP_DISCARD:
		decision(out, MTA_REPLY_DISCARD);
		return;
	case MH_REP_REPLYCODE:
		/* The codec checked the text: [45]dd on every line. */
		decision(out,
		         r->u.replycode.text[0] == '4' ? MTA_REPLY_TEMPFAIL : MTA_REPLY_REJECT);
		out->text = r->u.replycode.text;
		out->hangup = strncmp(out->text, "421", 3) == 0;
		return;
	case MH_REP_SKIP:
		if (postfix || awaited == MH_CMD_BODY)
			decision(out, MTA_REPLY_SKIP);
		return;
	case MH_REP_SHUTDOWN:
		if (postfix) {
			decision(out, MTA_REPLY_SHUTDOWN);
			out->hangup = 1;
		}
		return;
	case MH_REP_PROGRESS:
		if (postfix || at_eom)
			out->kind = MTA_RK_PROGRESS;
		return;
	case MH_REP_QUARANTINE:
		if (postfix || at_eom)
			out->kind = MTA_RK_QUARANTINE;
		return;
	default:
		if (mh_reply_is_modification(r->code) && at_eom)
			out->kind = MTA_RK_MODIFICATION;
		return;
	}
}
