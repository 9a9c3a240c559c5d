/*
 * child_fake - a scriptable fake child milter for test_child: listens on
 * a unix socket in a fresh mkdtemp directory, accepts one connection on
 * the test's libev loop, answers 'O' with f->neg, records every packet
 * it receives (code, payload, and which read() brought it), and hands
 * every packet but 'O' and 'D' to f->on_cmd (NULL: continue to every
 * answerable command). Writes are small and go straight to the socket.
 */
#ifndef CHILD_FAKE_H
#define CHILD_FAKE_H

#include <ev.h>
#include <stdint.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

#define MAXPK 128

struct fake;
typedef void (*fake_handler)(struct fake *f, const struct mh_packet *p);

struct fake {
	struct ev_loop *loop;
	char dir[64];
	char path[128];
	int lfd, fd;
	ev_io lw, rw;
	ev_timer tick;
	int ticks_left;
	struct mh_frame_reader rd;
	int nreads;
	int eof;
	/* everything received, in order */
	int npk;
	uint8_t codes[MAXPK];
	int readno[MAXPK];
	struct mh_buf payload[MAXPK];
	struct mh_optneg neg; /* the 'O' reply */
	fake_handler on_cmd; /* NULL: continue to every answerable command */
};

void fake_init(struct fake *f, struct ev_loop *loop); /* v6, all actions, no bits/lists */
void fake_free(struct fake *f);
void fake_send(struct fake *f, uint8_t code);
void fake_send_str(struct fake *f, uint8_t code, const char *s);
void fake_write(struct fake *f, struct mh_buf *b); /* sends and frees b */
void fake_close(struct fake *f);
int fake_answerable(uint8_t code); /* C H M R T L N B E U */
int fake_count(const struct fake *f, uint8_t code);

#endif
