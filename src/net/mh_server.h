/*
 * mh_server - a small one-request-per-connection server on a libev loop:
 * the transport shared by the control socket (mh_control) and the
 * statistics endpoint (mh_http). It listens, accepts, reads a request
 * into a bounded buffer under a deadline, hands the bytes to the
 * protocol, writes its answer without blocking under another deadline,
 * then closes, holds or lingers. What the bytes mean is the protocol's
 * business (ops).
 *
 * Ownership: the server owns the protocol's state (conf.data_size
 * bytes, mh_server_data(), passed as arg to every callback) and every
 * client (its fd, buffers and conf.client_size bytes of per-client
 * storage). A client handed to the protocol stays valid until it is
 * answered (mh_server_reply) or closed (mh_server_close), or until the
 * server is freed; after that the pointer is dead. ops and conf->name
 * are not copied: they must outlive the server.
 */
#ifndef MH_SERVER_H
#define MH_SERVER_H

#include <ev.h>
#include <stddef.h>

#include "util/mh_buf.h"

struct mh_server;
struct mh_server_client;

/* What on_data tells the server. */
enum mh_server_read {
	MH_SERVER_MORE, /* incomplete: keep reading */
	MH_SERVER_DONE, /* answered or taken: the client (even the server) may be dead now */
};

/* Why on_incomplete is called. */
enum mh_server_stall {
	MH_SERVER_EOF, /* the client shut its side down */
	MH_SERVER_TIMEOUT, /* conf.read_timeout passed since the accept */
	MH_SERVER_FULL, /* conf.max_request bytes buffered */
};

/* What happens once an answer is all written. */
enum mh_server_after {
	MH_SERVER_CLOSE, /* close at once */
	MH_SERVER_HOLD, /* keep it open (input dropped) until the client or the server goes */
	MH_SERVER_LINGER, /* shut our side down, drop input until EOF (conf.linger, drain_max) */
};

struct mh_server_ops {
	/*
	 * Bytes arrived: buf[0..len) is all received so far, of which
	 * buf[0..seen) was offered before; buf[len] may be written (a NUL).
	 * Return MH_SERVER_MORE, or MH_SERVER_DONE after mh_server_reply()
	 * or mh_server_take(); with MORE while len == conf.max_request the
	 * server calls on_incomplete(MH_SERVER_FULL).
	 */
	enum mh_server_read (*on_data)(struct mh_server_client *cl, char *buf, size_t len,
	                               size_t seen, void *arg);
	/* No complete request (why): mh_server_reply() or mh_server_close(). NULL: close. */
	void (*on_incomplete)(struct mh_server_client *cl, enum mh_server_stall why, char *buf,
	                      size_t len, void *arg);
	/*
	 * A connection beyond conf.max_clients, at most conf.max_busy of
	 * them at once (more are closed unanswered): answer it with
	 * mh_server_reply() without reading. It must not free the server.
	 * NULL: the bytes of busy are sent once without blocking (a fresh
	 * socket takes a short text), then the connection is closed.
	 */
	void (*on_busy)(struct mh_server_client *cl, void *arg);
	const char *busy;
};

struct mh_server_conf {
	const char *name; /* for messages: "control socket" -> "control socket: bind ..." */
	int backlog;
	int nodelay; /* TCP_NODELAY on accepted TCP connections */
	unsigned max_clients; /* served at once, held and lingering ones included */
	unsigned max_busy; /* over-cap connections being answered by ops->on_busy at once */
	size_t max_request; /* bytes buffered while reading */
	double read_timeout; /* seconds from the accept to a complete request */
	double write_timeout; /* seconds from mh_server_reply() to the last byte sent */
	double linger; /* seconds of MH_SERVER_LINGER, and not more than read_timeout */
	size_t drain_max; /* bytes dropped while lingering before giving up */
	size_t data_size; /* the protocol's state (mh_server_data): every callback's arg */
	size_t client_size; /* per-client storage for the protocol (mh_server_client_data) */
};

/*
 * Listen on spec (any mh_sockspec form; a stale unix socket file is
 * replaced, a live one refused; a new one gets mode, 0: the umask's).
 * Returns NULL with "<name>: <reason>" in err.
 */
struct mh_server *mh_server_new(struct ev_loop *loop, const char *spec, unsigned mode,
                                const struct mh_server_conf *conf, const struct mh_server_ops *ops,
                                char *err, size_t errlen);

/* The protocol's conf.data_size bytes, zeroed; freed with the server. */
void *mh_server_data(struct mh_server *s);
/* The TCP port listened on (useful after "inet:0@127.0.0.1"); -1 for a unix socket. */
int mh_server_port(const struct mh_server *s);
/* Change conf.read_timeout and conf.write_timeout (for tests). */
void mh_server_set_timeouts(struct mh_server *s, double read_s, double write_s);

/* The client's conf.client_size bytes, zeroed at the accept. */
void *mh_server_client_data(struct mh_server_client *cl);
/* Stop reading (and the read deadline): the protocol answers later. */
void mh_server_take(struct mh_server_client *cl);
/* The answer being composed: append to it, then mh_server_reply(). */
struct mh_buf *mh_server_out(struct mh_server_client *cl);
/* Send mh_server_out() under the write deadline, then `after`; cl may be dead on return. */
void mh_server_reply(struct mh_server_client *cl, enum mh_server_after after);
/* Close the connection now, unanswered. */
void mh_server_close(struct mh_server_client *cl);

/* In a worker after fork(): close every descriptor, free, unlink nothing. */
void mh_server_forget(struct mh_server *s);
/* Close clients (one last try for unsent answers) and the socket; unlink our unix socket file. */
void mh_server_free(struct mh_server *s);

#endif
