/*
 * mta_record - the transcript of one simulated session: negotiation, each
 * stage's reply, each message's outcome, modifications and final content.
 *
 * mta_session writes it; mta_report prints it; mta_load only reads the
 * result. The record owns every string in it (copies are made: reply
 * strings point into packets that do not outlive the callback).
 */
#ifndef MTA_RECORD_H
#define MTA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/mh_codec.h"
#include "protocol/mh_message.h"

/* A milter's answer to one command, as the report names it. */
enum mta_reply {
	MTA_REPLY_CONTINUE,
	MTA_REPLY_ACCEPT,
	MTA_REPLY_REJECT,
	MTA_REPLY_TEMPFAIL,
	MTA_REPLY_DISCARD,
	MTA_REPLY_SKIP,
	MTA_REPLY_SHUTDOWN,
	MTA_REPLY_NONE, /* NR-negotiated (or not sent): nothing awaited */
	MTA_REPLY_ERROR, /* timeout, close or malformed while waiting */
};

/* The outcome of a message (and of the session: the last message's). */
enum mta_result {
	MTA_RESULT_ACCEPT,
	MTA_RESULT_REJECT,
	MTA_RESULT_TEMPFAIL,
	MTA_RESULT_DISCARD,
	MTA_RESULT_SHUTDOWN,
	MTA_RESULT_ERROR,
	MTA_RESULT_NOT_SENT,
	MTA_RESULT_COUNT,
};

const char *mta_reply_name(enum mta_reply r);
const char *mta_result_name(enum mta_result r);
/* "add-header" ... for a modification code (+ - 2 b e h i m q). */
const char *mta_mod_name(uint8_t code);

struct mta_stage_rec {
	const char *stage; /* static: "connect", "rcpt", ... */
	char *arg; /* helo name, address, header name...; or NULL */
	enum mta_reply reply;
	char *text; /* the 'y' text, or NULL */
	char *detail; /* what went wrong (reply error), or NULL */
	unsigned progress;
	unsigned message; /* 1-based; 0 for connection-level stages */
	unsigned milter; /* chain mode: 1-based milter it went to; 0 otherwise */
};

/* Chain mode: one milter's negotiation (the top level repeats milter 1's). */
struct mta_milter_rec {
	char *socket; /* the spec, normalised */
	int negotiated;
	uint32_t version, actions, protocol;
	char *macros[MH_STAGE_COUNT]; /* lists the milter sent, or NULL */
};

/* One modification reply as the milter sent it (values not converted). */
struct mta_mod_rec {
	uint8_t code;
	uint32_t index; /* 'i', 'm' */
	char *str1; /* header name, recipient, sender, quarantine reason */
	char *str2; /* header value, ESMTP args; or NULL */
	size_t len; /* 'b': payload length */
};

struct mta_rcpt_rec {
	char *rcpt;
	enum mta_reply reply;
	char *text;
};

struct mta_msg_rec {
	enum mta_result result;
	char *reply; /* the 'y' text behind the result, or NULL */
	size_t stage_begin, stage_end; /* its stages: record->stages[begin..end) */
	struct mta_rcpt_rec *rcpts;
	size_t nrcpts;
	struct mta_mod_rec *mods;
	size_t nmods;
	int started; /* msg holds the message (else: never built) */
	struct mh_msg msg; /* envelope, headers, body after the edits */
};

struct mta_record {
	int negotiated; /* milter 1 negotiated (its values follow) */
	int ready; /* every milter negotiated (exit 3 rather than 2 on failure) */
	uint32_t version, actions, protocol;
	char *macros[MH_STAGE_COUNT]; /* lists the milter sent, or NULL */
	struct mta_stage_rec *stages;
	size_t nstages, stages_cap;
	struct mta_msg_rec *msgs; /* one per --messages */
	size_t nmsgs;
	enum mta_result result; /* error when the session failed, else the last message's */
	char *error; /* "timeout", "closed", "malformed: ...", ... */
	int exit_code; /* 0, 2 (unreachable / negotiation), 3 (failed later) */
	struct mta_milter_rec *milters; /* one per --socket */
	size_t nmilters;
};

void mta_record_init(struct mta_record *r, size_t nmsgs, size_t nmilters);
void mta_record_free(struct mta_record *r);

/* Append a stage; returns its index (pointers move on the next append). */
size_t mta_record_stage(struct mta_record *r, const char *stage, const char *arg, unsigned message);
void mta_record_stage_text(struct mta_record *r, size_t stage, const char *text);
void mta_record_stage_detail(struct mta_record *r, size_t stage, const char *detail);
void mta_record_rcpt(struct mta_msg_rec *m, const char *rcpt, enum mta_reply reply,
                     const char *text);
void mta_record_mod(struct mta_msg_rec *m, const struct mh_reply *rep);
/* The first error wins; later calls are ignored. */
void mta_record_error(struct mta_record *r, const char *error);

#endif
