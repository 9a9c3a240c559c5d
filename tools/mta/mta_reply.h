/*
 * mta_reply - what a milter's reply means to the simulated MTA at the
 * point where it arrives: pure classification by flavour, awaited
 * command and reply code (protocol doc §3, §7.2, §8). No state, no I/O.
 */
#ifndef MTA_REPLY_H
#define MTA_REPLY_H

#include <stdint.h>

#include "mta_config.h"
#include "mta_record.h"
#include "protocol/mh_codec.h"

enum mta_reply_kind {
	MTA_RK_DECISION, /* ends the wait for this command */
	MTA_RK_PROGRESS, /* 'p': keep waiting, the deadline restarts */
	MTA_RK_QUARANTINE, /* 'q': applied to the message, keep waiting */
	MTA_RK_MODIFICATION, /* + - 2 b e h i m, at end-of-message only */
	MTA_RK_UNEXPECTED, /* not acceptable here: the milter failed */
};

struct mta_reply_class {
	enum mta_reply_kind kind;
	enum mta_reply decision; /* MTA_RK_DECISION only */
	const char *text; /* the 'y' text (points into the reply), or NULL */
	int hangup; /* '4', or a 'y' with 421: the SMTP session ends */
};

/* Classify r, an answer to command `awaited` ('C', 'H', ... 'E'). */
void mta_reply_classify(enum mta_flavour flavour, uint8_t awaited, const struct mh_reply *r,
                        struct mta_reply_class *out);

/* "continue", "add-header", ... for any reply code; "unknown" otherwise. */
const char *mta_reply_code_name(uint8_t code);

#endif
