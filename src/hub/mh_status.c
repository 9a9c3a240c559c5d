/*
 * NAME
 *	mh_status 3
 * SUMMARY
 *	child answers as ordered statuses, and their merge (design §2.1)
 * SYNOPSIS
 *	#include "hub/mh_status.h"
 *
 *	enum mh_status mh_status_of_reply(uint8_t code, const char *text);
 *	uint8_t	mh_status_reply_code(enum mh_status st);
 *	const char *mh_status_name(enum mh_status st);
 *	int	mh_status_parse(const char *name, enum mh_status *out);
 *
 *	void	mh_status_merge_init(struct mh_status_merge *m);
 *	void	mh_status_merge_add(struct mh_status_merge *m,
 *			enum mh_status st, const char *text,
 *			unsigned int chain_index);
 *	enum mh_status mh_status_merge_result(const struct mh_status_merge *m);
 *	const char *mh_status_merge_reply_text(const struct mh_status_merge *m);
 * DESCRIPTION
 *	The hub never handles reply characters outside the codec: a child's
 *	decision becomes an enum mh_status here, merging is "keep the
 *	stronger", and the merged status becomes a reply code again on the
 *	way to the MTA. The enum's numeric order is the strength order, so
 *	statuses compare with < and >.
 *
 *	mh_status_of_reply() maps a decision reply to its status. A 'y'
 *	(REPLYCODE) counts as tempfail or reject by the first digit of its
 *	text, as libmilter pairs them; the codec has already checked the
 *	text's syntax. Everything that is not a status gives MH_ST_NONE and
 *	the caller treats it as its protocol demands (shutdown '4', say).
 *
 *	mh_status_reply_code() is the inverse for the six statuses.
 *	mh_status_name() and mh_status_parse() convert to and from the
 *	names used in configuration and logs.
 *
 *	struct mh_status_merge folds the answers of one stage. It keeps
 *	the strongest status and, per reply class, the text of the child
 *	earliest in chain order, so the result does not depend on the order
 *	in which parallel children happened to answer (the reference keeps
 *	the last text received). mh_status_merge_reply_text() returns the
 *	text only when its class matches the merged status.
 * OWNERSHIP
 *	Nothing is allocated or copied. Texts are borrowed from the caller
 *	and must outlive their use through the merge.
 * DIAGNOSTICS
 *	Folding MH_ST_NONE or an out-of-range status is an assertion
 *	failure (an invariant of the caller, not a peer's misbehaviour).
 * SEE ALSO
 *	../shared/docs/design.md §2.1, milter-protocol.md §3 and §3.1
 */
#include "hub/mh_status.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "protocol/mh_codec.h"

static const uint8_t status_code[MH_ST_COUNT] = {
    [MH_ST_ACCEPT] = MH_REP_ACCEPT,     [MH_ST_SKIP] = MH_REP_SKIP,
    [MH_ST_CONTINUE] = MH_REP_CONTINUE, [MH_ST_TEMPFAIL] = MH_REP_TEMPFAIL,
    [MH_ST_REJECT] = MH_REP_REJECT,     [MH_ST_DISCARD] = MH_REP_DISCARD,
};

static const char *const status_name[MH_ST_COUNT] = {
    [MH_ST_ACCEPT] = "accept",     [MH_ST_SKIP] = "skip",     [MH_ST_CONTINUE] = "continue",
    [MH_ST_TEMPFAIL] = "tempfail", [MH_ST_REJECT] = "reject", [MH_ST_DISCARD] = "discard",
};

static int status_valid(enum mh_status st)
{
	return st >= MH_ST_ACCEPT && st < MH_ST_COUNT;
}

/* Class of an SMTP reply text: tempfail for 4xx, reject for 5xx, else none. */
static enum mh_status text_class(const char *text)
{
	if (text == NULL)
		return MH_ST_NONE;
	if (text[0] == '4')
		return MH_ST_TEMPFAIL;
	if (text[0] == '5')
		return MH_ST_REJECT;
	return MH_ST_NONE;
}

enum mh_status mh_status_of_reply(uint8_t code, const char *text)
{
	enum mh_status st;

	if (code == MH_REP_REPLYCODE)
		return text_class(text);
	for (st = MH_ST_ACCEPT; st < MH_ST_COUNT; st++)
		if (status_code[st] == code)
			return st;
	return MH_ST_NONE;
}

uint8_t mh_status_reply_code(enum mh_status st)
{
	return status_valid(st) ? status_code[st] : 0;
}

const char *mh_status_name(enum mh_status st)
{
	if (st == MH_ST_NONE)
		return "none";
	return status_valid(st) ? status_name[st] : "invalid";
}

int mh_status_parse(const char *name, enum mh_status *out)
{
	enum mh_status st;

	/* The reference's spelling, so its fallback_status values carry over. */
	if (strcmp(name, "temporary-failure") == 0) {
		*out = MH_ST_TEMPFAIL;
		return 0;
	}
	for (st = MH_ST_ACCEPT; st < MH_ST_COUNT; st++)
		if (strcmp(name, status_name[st]) == 0) {
			*out = st;
			return 0;
		}
	return -1;
}

void mh_status_merge_init(struct mh_status_merge *m)
{
	m->status = MH_ST_NONE;
	m->text_4xx = NULL;
	m->text_5xx = NULL;
	m->index_4xx = 0;
	m->index_5xx = 0;
}

/* Keep text in a class slot unless the slot holds an earlier child's text. */
static void keep_first(const char **slot, unsigned int *slot_index, const char *text,
                       unsigned int index)
{
	if (*slot == NULL || index < *slot_index) {
		*slot = text;
		*slot_index = index;
	}
}

void mh_status_merge_add(struct mh_status_merge *m, enum mh_status st, const char *text,
                         unsigned int chain_index)
{
	assert(status_valid(st));
	m->status = mh_status_stronger(m->status, st);
	/* design §2.1: the first child in chain order wins, not the last answer. */
	switch (text_class(text)) {
	case MH_ST_TEMPFAIL:
		keep_first(&m->text_4xx, &m->index_4xx, text, chain_index);
		break;
	case MH_ST_REJECT:
		keep_first(&m->text_5xx, &m->index_5xx, text, chain_index);
		break;
	default:
		break;
	}
}

enum mh_status mh_status_merge_result(const struct mh_status_merge *m)
{
	return m->status;
}

const char *mh_status_merge_reply_text(const struct mh_status_merge *m)
{
	/* design §2.1: a custom text is passed only when its class matches. */
	if (m->status == MH_ST_TEMPFAIL)
		return m->text_4xx;
	if (m->status == MH_ST_REJECT)
		return m->text_5xx;
	return NULL;
}
