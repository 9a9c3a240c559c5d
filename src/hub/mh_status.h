/*
 * mh_status - the status algebra of design §2.1: one ordered enum for a
 * child's answer, its mapping to and from milter reply codes and config
 * names, and an accumulator that merges the answers of several children
 * into the one answer the MTA gets.
 *
 * Pure: no I/O, no allocation. Reply texts folded into a merge are NOT
 * copied: the caller owns them and keeps each alive until the merge is
 * re-initialised or its result has been sent (the hub keeps a child's
 * REPLYCODE text in that child's state, not in the frame reader, whose
 * buffer the next packet overwrites).
 */
#ifndef MH_STATUS_H
#define MH_STATUS_H

#include <stdint.h>

/*
 * A larger value is a stronger answer (design §2.1):
 * discard > reject > tempfail > continue > skip > accept.
 * MH_ST_NONE ("no answer yet") is below everything, so folding by
 * strength needs no special case; it is never sent to anyone.
 */
enum mh_status {
	MH_ST_NONE = -1,
	MH_ST_ACCEPT = 0,
	MH_ST_SKIP,
	MH_ST_CONTINUE,
	MH_ST_TEMPFAIL,
	MH_ST_REJECT,
	MH_ST_DISCARD,
	MH_ST_COUNT /* number of real statuses, for tables indexed by status */
};

/*
 * Status of a decoded decision reply: 'a' 'c' 'r' 't' 'd' 's', and 'y'
 * by the first character of its text ('4' tempfail, '5' reject; text is
 * read only for 'y' and may be NULL otherwise). MH_ST_NONE for anything
 * else: a 'y' whose text is NULL or starts with another character,
 * informational and modification replies, '4' (shutdown) and 'f'.
 */
enum mh_status mh_status_of_reply(uint8_t code, const char *text);

/* Reply code that carries a status ('a' 's' 'c' 't' 'r' 'd'); 0 for MH_ST_NONE. */
uint8_t mh_status_reply_code(enum mh_status st);

/* The stronger of two statuses (design §2.1). */
static inline enum mh_status mh_status_stronger(enum mh_status a, enum mh_status b)
{
	return a > b ? a : b;
}

/* "accept" "skip" "continue" "tempfail" "reject" "discard"; "none"; "invalid". */
const char *mh_status_name(enum mh_status st);

/*
 * Parse a config name (the names above, and the reference's
 * "temporary-failure"); exact, case-sensitive. Returns 0 and sets *out,
 * or -1 (*out untouched). "none" is not a name a user can give.
 */
int mh_status_parse(const char *name, enum mh_status *out);

/*
 * Merge accumulator for one stage (or one recipient). Init it, fold in
 * every participating child's answer, read the result.
 *
 * "Accept only retires that child" (design §2.1): the hub folds the
 * answers of the children still participating at this stage and retires
 * a child that answered accept (for the connection at connect/helo, for
 * the transaction later), so it is not folded again. Accept is the
 * weakest status, hence the merged status is accept only when every
 * folded answer was accept. Children that were not applicable are not
 * folded. Nothing folded gives MH_ST_NONE: the caller decides (design
 * §2.5: no applicable child left -> the manager-level fallback).
 *
 * Re-initialise per stage and per recipient: a merged status must never
 * leak into the next stage or message (design §2.5).
 */
struct mh_status_merge {
	enum mh_status status; /* strongest folded so far */
	/* First child in chain order whose reply text is 4xx / 5xx. */
	const char *text_4xx;
	const char *text_5xx;
	unsigned int index_4xx;
	unsigned int index_5xx;
};

void mh_status_merge_init(struct mh_status_merge *m);

/*
 * Fold one child's answer. st must be a real status (not MH_ST_NONE).
 * text is that child's REPLYCODE text or NULL; its class is taken from
 * its first digit, texts of another class are ignored. chain_index is the
 * child's position in configuration order. Answers may be folded in any
 * order (envelope stages answer in parallel): among texts of one class
 * the lowest chain_index wins, and on a tie the one folded first.
 */
void mh_status_merge_add(struct mh_status_merge *m, enum mh_status st, const char *text,
                         unsigned int chain_index);

/* Merged status: the strongest folded, MH_ST_NONE when nothing was folded. */
enum mh_status mh_status_merge_result(const struct mh_status_merge *m);

/*
 * Reply text to send with the merged status ('y' instead of the plain
 * code), or NULL: a 4xx text only when the merged status is tempfail, a
 * 5xx text only when it is reject (design §2.1); the first child in
 * chain order among those that sent one. Borrowed from the caller.
 */
const char *mh_status_merge_reply_text(const struct mh_status_merge *m);

#endif
