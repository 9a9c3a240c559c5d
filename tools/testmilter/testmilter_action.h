/*
 * testmilter_action - one --on action list of the test milter: the ACTION
 * grammar of docs/tools.md (decisions, delay/hang/close, packets).
 *
 * Pure: no I/O; unit-tested with the script (test_testmilter_script.c).
 * Ownership: a tm_action owns its strings a and b; tm_action_free()
 * releases them (not the struct itself).
 *
 * Functions:
 *   tm_action_parse_list  parse "ACTION[,ACTION...]", appending to *acts
 *                         (a realloc'ed array the caller owns); -1 with a
 *                         one-line reason in err on the first bad action
 *                         (actions parsed so far stay in *acts).
 *   tm_action_free        free one action's strings.
 *   tm_action_is_decision true for continue ... reply (they end a list).
 *   tm_parse_u32          decimal digits only, at most max.
 */
#ifndef TESTMILTER_ACTION_H
#define TESTMILTER_ACTION_H

#include <stddef.h>
#include <stdint.h>

enum tm_action_kind {
	/* decisions: end the action list */
	TM_ACT_CONTINUE,
	TM_ACT_ACCEPT,
	TM_ACT_REJECT,
	TM_ACT_TEMPFAIL,
	TM_ACT_DISCARD,
	TM_ACT_SKIP,
	TM_ACT_REPLY, /* a = 'y' text (alen bytes) */
	/* control */
	TM_ACT_DELAY, /* num = milliseconds */
	TM_ACT_HANG,
	TM_ACT_CLOSE,
	/* packets that are not decisions */
	TM_ACT_GARBAGE,
	TM_ACT_PROGRESS,
	TM_ACT_ADD_HEADER, /* a = name, b = value */
	TM_ACT_INS_HEADER, /* num = index, a = name, b = value */
	TM_ACT_CHG_HEADER, /* a = name, num = index, b = value */
	TM_ACT_ADD_RCPT, /* a = address */
	TM_ACT_ADD_RCPT_PAR, /* a = address, b = ESMTP args or NULL */
	TM_ACT_DEL_RCPT, /* a = address */
	TM_ACT_CHG_FROM, /* a = address, b = ESMTP args or NULL */
	TM_ACT_REPL_BODY, /* a = body with CRLF line ends, alen bytes */
	TM_ACT_QUARANTINE, /* a = reason */
};

struct tm_action {
	enum tm_action_kind kind;
	uint32_t num;
	char *a; /* owned, NULL when unused */
	char *b; /* owned, NULL when unused */
	size_t alen;
};

int tm_action_parse_list(const char *p, struct tm_action **acts, size_t *nacts, char *err,
                         size_t errlen);
void tm_action_free(struct tm_action *a);
int tm_action_is_decision(enum tm_action_kind k);
int tm_parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out);

#endif
