/*
 * mh_hub - the milter manager's semantics: one SMTP session from the MTA
 * fanned out to the child milters, their answers merged exactly as an
 * MTA would (design §2).
 *
 * One mh_hub per worker process: it owns the sessions living on its
 * libev loop. A session is plain state on the loop (an mh_mta, one
 * mh_child per applicable child, the working copy of the message); no
 * thread per session, no blocking wait.
 *
 * Ownership: conf (and the child confs it points to) must outlive the
 * hub; a reload builds a new hub in new worker processes.
 */
#ifndef MH_HUB_H
#define MH_HUB_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "child/mh_child.h"
#include "hub/mh_status.h"

/*
 * What the daemon knows at run time and the config does not: a child
 * switched on or off with milterhubctl, a supervised child known to be
 * down. Asked once per child at the start of each SMTP session; the hub
 * reports back what happened, for the daemon's counters. Every hook may
 * be NULL; the calls cost a pointer test when unused.
 */
#define MH_HUB_CHILDREN_MAX 64 /* milter blocks in one configuration */

enum mh_hub_gate {
	MH_GATE_CONFIG, /* the config's `enabled` decides */
	MH_GATE_ON, /* use it, even if the config says enabled = false */
	MH_GATE_OFF, /* skip it for this session, as if disabled */
	MH_GATE_DOWN, /* known dead: its fallback at once, no connect attempt */
};

/* Stages as statistics and the reference's log lines name them. */
enum mh_hub_stage {
	MH_HS_NEGOTIATE,
	MH_HS_CONNECT,
	MH_HS_HELO,
	MH_HS_MAIL,
	MH_HS_RCPT,
	MH_HS_DATA,
	MH_HS_UNKNOWN,
	MH_HS_HEADER,
	MH_HS_EOH,
	MH_HS_BODY,
	MH_HS_EOM,
	MH_HS_COUNT
};
/* "negotiate" "connect" "helo" "envelope-from" "envelope-recipient" "data" "unknown"
 * "header" "end-of-header" "body" "end-of-message"; "invalid". */
const char *mh_hub_stage_name(enum mh_hub_stage st);
/* The stage of a command code ('O' 'C' 'H' 'M' 'R' 'T' 'U' 'L' 'N' 'B' 'E'); COUNT if none. */
enum mh_hub_stage mh_hub_stage_of(uint8_t cmd);

/* Why a child's fallback stood in for it. */
enum mh_hub_fail {
	MH_FAIL_TIMEOUT, /* a deadline passed (connect, write, read, eom) */
	MH_FAIL_CLOSED, /* it closed the connection, or connect was refused */
	MH_FAIL_MALFORMED, /* garbage, an oversize packet, a reply illegal there */
	MH_FAIL_DOWN, /* supervised and known down: not even tried */
	MH_FAIL_OTHER,
	MH_FAIL_COUNT
};
const char *
mh_hub_fail_name(enum mh_hub_fail f); /* "timeout" "closed" "malformed" "down" "other" */

/* How a session (or a message in it) ended, for statistics. */
enum mh_hub_result {
	MH_RES_ACCEPT,
	MH_RES_REJECT,
	MH_RES_TEMPFAIL,
	MH_RES_DISCARD,
	MH_RES_QUARANTINE, /* accepted with a quarantine request */
	MH_RES_ABORT, /* the MTA aborted the message or closed mid-transaction */
	MH_RES_PASS, /* nothing decided: every answer was continue */
	MH_RES_COUNT
};
const char *mh_hub_result_name(enum mh_hub_result r); /* "accept" ... "pass" */

struct mh_hub_hooks {
	enum mh_hub_gate (*gate)(void *arg, size_t child); /* child: index in conf->children */
	uint64_t (*session_id)(void *arg); /* ids unique across workers; NULL: 1, 2, ... */
	void (*session_open)(void *arg); /* an MTA connection taken */
	void (*session_close)(void *arg);
	void (*child_used)(void *arg, size_t child); /* a link started for a session */
	/* A child's own answer at stage, seconds after the command went out. */
	void (*child_answer)(void *arg, size_t child, enum mh_hub_stage stage, enum mh_status st,
	                     double seconds);
	/* Its fallback stood in for it at stage. */
	void (*child_failed)(void *arg, size_t child, enum mh_hub_stage stage,
	                     enum mh_hub_fail why);
	/* A header it added or inserted (evaluation children too: what they would add). */
	void (*header_added)(void *arg, size_t child, const char *name, const char *value);
	void (*mta_reply)(void *arg, enum mh_hub_stage stage,
	                  enum mh_status st); /* every decision */
	void (*message)(void *arg, enum mh_hub_result r); /* a transaction ended */
	void (*recipient)(void *arg); /* an RCPT from the MTA */
	void (*mta_malformed)(void *arg); /* a session closed for the MTA's bad input */
	void *arg;
};

struct mh_hub_conf {
	enum mh_status fallback; /* no applicable child left (default accept) */
	size_t body_memory_limit; /* per message, then a temp file (4 MiB) */
	const char *tmpdir; /* NULL = $TMPDIR or /tmp */
	double mta_timeout; /* longest wait for the MTA's next command (600 s) */
	size_t max_payload; /* largest packet accepted from MTA and children */
	struct mh_child_conf *children; /* chain order = configuration order */
	size_t nchildren;
	const struct mh_hub_hooks *hooks; /* NULL: config only, nothing counted */
};

struct mh_hub;

struct mh_hub *mh_hub_new(struct ev_loop *loop, const struct mh_hub_conf *conf);
/* Take an accepted MTA connection (fd now owned by the hub). */
void mh_hub_accept(struct mh_hub *h, int fd);
/* Sessions in progress. */
size_t mh_hub_sessions(const struct mh_hub *h);
/* Close every session and free. */
void mh_hub_free(struct mh_hub *h);

#endif
