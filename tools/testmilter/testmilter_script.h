/*
 * testmilter_script - the test milter's script: --on rules and --negotiate
 * items, parsed into plain data.
 *
 * Pure: no I/O, no event loop; everything here is unit-tested
 * (tests/unit/test_testmilter_script.c). The contract of the syntax is
 * docs/tools.md, section milterhub-testmilter.
 *
 * Ownership: a tm_script owns every rule, action and string hanging off
 * it; tm_script_free() releases them all. Lookups return pointers into
 * the script, valid until it is freed.
 *
 * Functions:
 *   tm_script_init/free     empty script with the default negotiation.
 *   tm_script_add_on        parse one --on "STAGE[:QUAL]=ACTION[,ACTION...]";
 *                           a repeated STAGE[:QUAL] appends to its list.
 *   tm_script_add_negotiate parse one --negotiate "ITEM[,ITEM...]".
 *   tm_script_find          the rule for an event (qualified before plain).
 *   tm_script_want          what to ask for in answer to an MTA offer.
 *   tm_stage_name/parse     stage names; tm_stage_of_cmd maps a command code.
 * Parse errors return -1 with a one-line reason in err (no newline).
 */
#ifndef TESTMILTER_SCRIPT_H
#define TESTMILTER_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/mh_codec.h"
#include "testmilter_action.h"

/* Events a rule can be attached to (docs/tools.md "STAGE"). */
enum tm_stage {
	TM_STAGE_CONNECT,
	TM_STAGE_HELO,
	TM_STAGE_MAIL,
	TM_STAGE_RCPT,
	TM_STAGE_DATA,
	TM_STAGE_HEADER,
	TM_STAGE_EOH,
	TM_STAGE_BODY,
	TM_STAGE_EOM,
	TM_STAGE_UNKNOWN,
	TM_STAGE_ABORT,
	TM_STAGE_COUNT,
	TM_STAGE_NONE = -1,
};

struct tm_rule {
	enum tm_stage stage;
	char *qual; /* owned; mail/rcpt address without <> or header name; NULL = plain */
	struct tm_action *acts; /* owned array */
	size_t nacts;
};

struct tm_script {
	struct tm_rule *rules; /* owned array, in order of first appearance */
	size_t nrules;
	/* --negotiate */
	uint32_t version; /* highest version spoken (default 6) */
	int actions_set; /* actions= given */
	uint32_t actions; /* valid when actions_set */
	uint32_t protocol; /* flag names given (SKIP is added when offered) */
	char *macros[MH_STAGE_COUNT]; /* owned; NULL = no list for that stage */
};

void tm_script_init(struct tm_script *s);
void tm_script_free(struct tm_script *s);

int tm_script_add_on(struct tm_script *s, const char *arg, char *err, size_t errlen);
int tm_script_add_negotiate(struct tm_script *s, const char *arg, char *err, size_t errlen);

/*
 * The rule for an event, or NULL (then the answer is continue). arg is
 * the sender or recipient (with or without <>) for TM_STAGE_MAIL and
 * TM_STAGE_RCPT, the header name for TM_STAGE_HEADER, ignored otherwise.
 */
const struct tm_rule *tm_script_find(const struct tm_script *s, enum tm_stage stage,
                                     const char *arg);

/*
 * Fill *want for mh_optneg_answer(): the script's version, actions= or
 * every offered action, the flags named plus SKIP when offered, and the
 * macro lists (pointers into the script). With version=N below the
 * MTA's, the defaults keep to version N's flags (an old milter would).
 */
void tm_script_want(const struct tm_script *s, const struct mh_optneg *offer,
                    struct mh_optneg *want);

const char *tm_stage_name(enum tm_stage st);
enum tm_stage tm_stage_parse(const char *name, size_t len);
/* The stage a command code belongs to; TM_STAGE_NONE for O D Q K. */
enum tm_stage tm_stage_of_cmd(uint8_t code);

#endif
