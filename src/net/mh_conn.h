/*
 * mh_conn - one milter connection on a libev loop: framed reads, queued
 * writes, one deadline.
 *
 * Used by both roles (MTA side and milter side); it knows frames, not
 * commands. Incoming bytes go through an mh_frame_reader and each
 * complete frame is handed to ops->on_packet. Outgoing frames are
 * encoded by the caller straight into mh_conn_out() and sent by
 * mh_conn_flush() with one write() where the kernel takes it all (so a
 * macro packet and its command leave in one segment: design §7).
 *
 * Ownership: the conn owns its fd and buffers. mh_conn_close() may be
 * called from inside any callback; the conn is then freed once the
 * callback returns and no further callback is made for it.
 * ops->on_close is called exactly once per conn unless the owner closed
 * it itself with mh_conn_close().
 */
#ifndef MH_CONN_H
#define MH_CONN_H

#include <ev.h>
#include <stddef.h>

#include "net/mh_sockspec.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

struct mh_conn;

enum mh_conn_why {
	MH_CONN_EOF, /* peer closed at a frame boundary */
	MH_CONN_IOERR, /* read/write error, or EOF inside a frame */
	MH_CONN_TIMEOUT, /* the deadline passed */
	MH_CONN_PROTOCOL, /* malformed frame (codec error in conn's last_error) */
	MH_CONN_CONNECT, /* asynchronous connect failed (errno in last_error) */
};

const char *mh_conn_why_str(enum mh_conn_why why);

struct mh_conn_ops {
	/* Async connect finished (only for mh_conn_connect). May be NULL. */
	void (*on_connected)(struct mh_conn *c, void *arg);
	/* One complete frame; p->data valid only during the call. */
	void (*on_packet)(struct mh_conn *c, const struct mh_packet *p, void *arg);
	/* The conn is gone after this returns (do not touch it again). */
	void (*on_close)(struct mh_conn *c, enum mh_conn_why why, void *arg);
};

/* Wrap an accepted/connected fd (made non-blocking here). */
struct mh_conn *mh_conn_new(struct ev_loop *loop, int fd, size_t max_payload,
                            const struct mh_conn_ops *ops, void *arg);
/*
 * Connect asynchronously; the deadline (seconds, 0 = none) bounds the
 * connect. Returns NULL with err filled when the connect fails at once.
 */
struct mh_conn *mh_conn_connect(struct ev_loop *loop, const struct mh_sockspec *s, double timeout,
                                size_t max_payload, const struct mh_conn_ops *ops, void *arg,
                                char *err, size_t errlen);

/* Outgoing buffer: append frames with mh_codec_put_*, then flush. */
struct mh_buf *mh_conn_out(struct mh_conn *c);
void mh_conn_flush(struct mh_conn *c);

/*
 * Arm the single deadline: seconds from now (0 disarms). Expiry closes
 * the conn with MH_CONN_TIMEOUT. Re-arming replaces the old deadline.
 */
void mh_conn_set_deadline(struct mh_conn *c, double seconds);

/*
 * Stop/restart delivering frames; frames already buffered wait. Pause is
 * soft: bytes that arrive while paused are read ahead into the conn (up
 * to 64 KiB, then reading stops: back-pressure) and delivered in order
 * after resume, from the loop; EOF or an error seen while paused is
 * reported only after resume, after the frames before it.
 */
void mh_conn_pause(struct mh_conn *c);
void mh_conn_resume(struct mh_conn *c);

/*
 * Close now (pending output is dropped unless `flush_first`: then the
 * conn tries one last non-blocking write). No on_close callback.
 */
void mh_conn_close(struct mh_conn *c, int flush_first);

void mh_conn_set_arg(struct mh_conn *c, void *arg);
int mh_conn_fd(const struct mh_conn *c);
/* codec error or errno behind the last close reason. */
int mh_conn_last_error(const struct mh_conn *c);
/* 1 when the conn is a TCP socket (AF_INET / AF_INET6). */
int mh_conn_is_tcp(const struct mh_conn *c);

#endif
