/*
 * mta_macros - which macros the simulated MTA sends before each command,
 * and with what values (docs/tools.md "On the wire"; protocol doc §5).
 *
 * Per stage the list is the milter's requested one (negotiation trailer)
 * when it sent a non-empty one, else the flavour's default list; --macro
 * values are added at their stage and override. Only macros with a value
 * are sent. Names go out as listed ("j", "{client_addr}").
 *
 * Ownership: mta_macro_lists owns a tokenised copy of the milter's lists;
 * the pairs that mta_macros_build fills point into the lists, the config
 * and the caller's mta_macro_values, and live as long as those.
 */
#ifndef MTA_MACROS_H
#define MTA_MACROS_H

#include <stddef.h>
#include <stdint.h>

#include "mta_config.h"
#include "protocol/mh_codec.h"

/* Most pairs one 'D' carries: what our own decoder accepts. */
#define MTA_MACRO_PAIRS_MAX (MH_ARGS_MAX / 2)

struct mta_macro_lists {
	char *storage[MTA_M_COUNT]; /* owned, NUL-separated names */
	const char *names[MTA_M_COUNT][MTA_MACRO_PAIRS_MAX];
	size_t count[MTA_M_COUNT];
};

/* Per-message values, owned by the caller; NULL = no value yet. */
struct mta_macro_values {
	const char *queue_id;
	const char *mail_addr; /* sender without <> */
	const char *rcpt_addr; /* current recipient without <> */
	const char *msg_id; /* Message-ID value (Sendmail's {msg_id}) */
};

/* Lists from the milter's 'O' reply (reply->macros, may all be NULL). */
void mta_macro_lists_init(struct mta_macro_lists *l, const struct mh_optneg *reply);
void mta_macro_lists_free(struct mta_macro_lists *l);

/*
 * Fill pairs (room for 2 * MTA_MACRO_PAIRS_MAX strings) for the 'D' that
 * precedes command `cmd`. Returns the number of pairs, or -1 when this
 * flavour sends no 'D' before that command at all. Postfix: a 'D' (maybe
 * empty) before C H M R T U L N B E; Sendmail: only before C H M R T N E,
 * and only with at least one pair (the caller checks the count).
 */
int mta_macros_build(const struct mta_macro_lists *l, const struct mta_config *cfg,
                     const struct mta_macro_values *v, uint8_t cmd, const char **pairs);

#endif
