/*
 * mh_message - a message as an MTA holds it while milters edit it:
 * envelope, header list, body, quarantine reason.
 *
 * Pure logic, no I/O. Edits follow Postfix's semantics (cleanup_milter.c,
 * ../shared/docs/milter-protocol.md 3.2-3.3), so the MTA simulator's
 * report shows what Postfix would deliver and the hub's working copy
 * (design §2.3) matches what the MTA will hold:
 *  - add: append at the end;
 *  - insert at index: position in the whole list including the MTA's own
 *    hidden headers (0 = very top, n = after the n-th, too large = append);
 *  - change: n-th (1-based, 0 treated as 1) visible header of that name,
 *    case-insensitive, rewritten with the name as the milter spelt it
 *    (Postfix writes a new header line); empty value deletes (later
 *    indexes shift); missing instance: non-empty value appends, empty is
 *    a no-op. "Visible" as Postfix counts it: the first k headers of the
 *    list are skipped, k = number of hidden headers (the same thing while
 *    they sit at the top; after a milter inserted a header at index 0,
 *    Postfix skips that one and counts its own Received:);
 *  - body replacement: a run of 'b' replaces the body; when the run ends
 *    the body is normalised as Postfix stores it (lines split at LF, a CR
 *    before LF dropped, every line ended with CRLF);
 *  - header values are stored raw, exactly as after "Name:" in the
 *    message (with the leading space). What a milter sees and sends has
 *    one leading space removed/added unless it negotiated HDR_LEADSPC.
 *
 * The message owns every string it holds (copies are made on input).
 */
#ifndef MH_MESSAGE_H
#define MH_MESSAGE_H

#include <stddef.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

struct mh_msg_header {
	char *name;
	char *value; /* raw: what follows the colon, folds joined by LF */
	int hidden; /* the MTA's own header, never shown to milters */
};

struct mh_msg_rcpt {
	char *addr; /* as given, usually with angle brackets */
	char *args; /* ESMTP args as one string, or NULL */
};

struct mh_msg {
	char *sender; /* NULL until set */
	char *sender_args; /* NULL when none */
	struct mh_msg_rcpt *rcpts;
	size_t nrcpts, rcpts_cap;
	struct mh_msg_header *hdrs;
	size_t nhdrs, hdrs_cap;
	struct mh_buf body; /* CRLF line ends, as sent in 'B' */
	char *quarantine; /* NULL when not quarantined */
	int replacing_body; /* inside a run of 'b' packets (see mh_msg_apply) */
};

void mh_msg_init(struct mh_msg *m);
void mh_msg_free(struct mh_msg *m);

void mh_msg_set_sender(struct mh_msg *m, const char *addr, const char *args);
void mh_msg_add_rcpt(struct mh_msg *m, const char *addr, const char *args);
/* Remove every recipient equal to addr, ignoring <>, surrounding blanks
 * and case. Returns count. */
size_t mh_msg_del_rcpt(struct mh_msg *m, const char *addr);

/* Header edits; raw values (see above). */
void mh_msg_add_header(struct mh_msg *m, const char *name, const char *raw, int hidden);
void mh_msg_insert_header(struct mh_msg *m, size_t index, const char *name, const char *raw);
/* raw NULL or "" deletes (see above). */
void mh_msg_change_header(struct mh_msg *m, size_t index, const char *name, const char *raw);

/* Value conversions between raw storage and what a milter sees/sends. */
const char *mh_msg_value_for_milter(const char *raw, int leadspc); /* points into raw */
char *mh_msg_value_from_milter(const char *value, int leadspc); /* malloc'd */

/*
 * Apply one modification reply (+ - 2 b e h i m q) from a milter that
 * negotiated `leadspc`. The first 'b' of a run replaces the body, the
 * following ones append, any other reply ends the run (also one that is
 * not a modification). A 'm' with an empty value (as the milter sent it)
 * deletes. Returns 0, or -1 when r is not a modification.
 */
int mh_msg_apply(struct mh_msg *m, const struct mh_reply *r, int leadspc);
/* Call when a milter's reply sequence ends (its decision arrived). */
void mh_msg_end_of_replies(struct mh_msg *m);

#endif
