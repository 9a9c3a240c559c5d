/*
 * test_mta_driver - the MTA end for test_mta: a socketpair, an mh_mta on
 * a private libev loop on one side, the test writing commands with the
 * codec and reading replies on the other; callbacks record what the hub
 * side saw and can reply or free on cue.
 */
#ifndef TEST_MTA_DRIVER_H
#define TEST_MTA_DRIVER_H

#include <ev.h>
#include <stdint.h>

#include "mta/mh_mta.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

#define MAXCMD 64
#define NONE_SEEN "-"

struct t {
	struct ev_loop *loop;
	ev_timer guard;
	int fd; /* the MTA's end, blocking */
	struct mh_mta *m;
	struct mh_buf out; /* what the MTA writes next */
	struct mh_buf in; /* read from the hub, not yet framed */
	struct mh_frame_reader rd;
	struct mh_reply rep; /* last reply read */
	/* seen */
	int events;
	int noptneg;
	int ncmds;
	uint8_t codes[MAXCMD];
	char probe_val[MAXCMD][32]; /* mh_mta_macro(probe) at each command */
	int nclosed;
	enum mh_conn_why why;
	/* behaviour */
	int want_events;
	const char *probe;
	int auto_continue; /* reply continue to every answerable command */
	uint8_t free_at; /* mh_mta_free inside on_command for this code */
	int free_on_close; /* mh_mta_free inside on_close */
	int reply_optneg; /* answer 'O' from inside on_optneg with `neg` */
	struct mh_optneg neg;
};

/* An answerable command (C H M R T L N B E U). */
int answerable(uint8_t c);
/* Run the loop until n more callbacks happened or max seconds passed. */
void run(struct t *t, int n, double max);
/* Wrap one end of a new socketpair in an mh_mta (session id 42). */
void start(struct t *t, double idle);
int setup(void **state);
int teardown(void **state);
/* Write everything queued in t->out. */
void send_out(struct t *t);
/* Read one reply into t->rep: 1, 0 when nothing comes within ms, -1 at EOF. */
int next_reply(struct t *t, int ms);
void expect_reply(struct t *t, uint8_t code);
void expect_silence(struct t *t);
/* Queue packets: a 'D' (stage, name, value, ..., NULL), empty ones, C, str ones, O. */
void w_macro(struct t *t, uint8_t stage, ...);
void w_empty(struct t *t, uint8_t code);
void w_connect(struct t *t);
void w_str(struct t *t, uint8_t code, const char *s);
void w_optneg(struct t *t);
/* O in, reply with these actions/protocol, check the 'O' on the wire. */
void negotiate(struct t *t, uint32_t actions, uint32_t protocol);
/* Send what is queued; run until an answerable command arrives; it must be code. */
void await_cmd(struct t *t, uint8_t code);
/* await_cmd, answer st, read the reply (0: expect none). */
void step(struct t *t, uint8_t code, enum mh_status st, uint8_t reply);
/* Send what is queued; expect on_close(PROTOCOL) and a closed socket. */
void expect_protocol_close(struct t *t);

#endif
