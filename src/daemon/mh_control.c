/*
 * mh_control - the master's control socket: the one-line protocol of
 * mh_control.h on top of mh_server (which does the socket work).
 *
 * SUMMARY
 *	mh_control_new() listens on a socket spec; each connection sends
 *	one request line, which is split into words and handed to the
 *	handler; its answer ("ok"/"error" and a body) is written and the
 *	connection closed, or held. What the commands mean is the
 *	handler's business (mh_master_ctl.c).
 *
 * LIMITS (all bounded by mh_server, nothing blocks the loop)
 *	A request line holds at most MH_CONTROL_LINE_MAX bytes before its
 *	"\n" (a trailing "\r" is dropped, so `nc` users are served too).
 *	Words are separated by runs of spaces or tabs. The line must be
 *	complete within MH_CONTROL_TIMEOUT seconds of the accept, and the
 *	answer written within MH_CONTROL_TIMEOUT seconds of the reply;
 *	otherwise the client gets "error\nbad request: ...\n" or is simply
 *	closed. At most MH_CONTROL_CLIENTS connections are served at once
 *	(held ones included); one more is answered "error\nbusy\n" by a
 *	single non-blocking send and closed. accept() failing for lack of
 *	descriptors pauses accepting for a second instead of spinning.
 *
 * OWNERSHIP
 *	A struct mh_control_req belongs to this module (it lives in the
 *	mh_server client). The handler gets it and must answer it exactly
 *	once (mh_control_reply/hold), at once or later; after that the
 *	pointer is dead. mh_control_free() drops requests still
 *	unanswered: their pointers are dead too. The handler may call
 *	mh_control_free() itself.
 *
 * THE UNIX SOCKET FILE AND FORK
 *	As mh_server: a stale file is replaced, a live one is "in use by
 *	another milterhub" (a non-blocking check, so a wedged peer cannot
 *	stall start-up); mh_control_free() unlinks the path only if it
 *	still names the inode we created, mh_control_forget() (in a
 *	worker, after ev_loop_fork()) closes the descriptors and never
 *	unlinks.
 *
 * DIAGNOSTICS
 *	mh_control_new(): one line in err, e.g. "control socket
 *	unix:/run/x.sock is in use by another milterhub", "control socket:
 *	bind unix:/x: Permission denied". At run time: accept failures are
 *	logged (warn); a client's misbehaviour is answered, not logged.
 */
#include "daemon/mh_control.h"

#include "net/mh_server.h"
#include "util/mh_buf.h"

#include <stdio.h>
#include <string.h>

#define MH_CONTROL_LINE_MAX 1024 /* bytes before the "\n" */
#define MH_CONTROL_TIMEOUT 5.0 /* seconds: to send the line, to take the answer */
#define MH_CONTROL_CLIENTS 16 /* connections served at once */
#define MH_CONTROL_BACKLOG 32

struct mh_control_req {
	struct mh_server_client *cl;
};

struct mh_control {
	struct mh_server *srv;
	mh_control_handler handler;
	void *arg;
};

/* Queue "ok"/"error" + body and start sending; cl may be dead on return. */
static void answer(struct mh_server_client *cl, int ok, const char *body,
                   enum mh_server_after after)
{
	struct mh_buf *out = mh_server_out(cl);
	mh_buf_append_str(out, ok ? "ok\n" : "error\n");
	if (body != NULL && body[0] != '\0') {
		mh_buf_append_str(out, body);
		if (body[strlen(body) - 1] != '\n') /* the protocol: a body ends with "\n" */
			mh_buf_append_byte(out, '\n');
	}
	mh_server_reply(cl, after);
}

static void bad_request(struct mh_server_client *cl, const char *why)
{
	char body[128];
	snprintf(body, sizeof(body), "bad request: %s", why);
	answer(cl, 0, body, MH_SERVER_CLOSE);
}

/* Split line into words in place; argv has room for strlen(line)/2 + 2. */
static int split_words(char *line, char **argv)
{
	int argc = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		argv[argc++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p == '\0')
			break;
		*p++ = '\0';
	}
	argv[argc] = NULL;
	return argc;
}

/* A complete line of n bytes (without its "\n"): check it, call the handler. */
static void dispatch(struct mh_control *c, struct mh_server_client *cl, char *line, size_t n)
{
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	if (memchr(line, '\0', n) != NULL) {
		bad_request(cl, "NUL byte in the request line");
		return;
	}
	char *argv[MH_CONTROL_LINE_MAX / 2 + 2];
	int argc = split_words(line, argv);
	if (argc == 0) {
		bad_request(cl, "empty request line");
		return;
	}
	struct mh_control_req *r = mh_server_client_data(cl);
	r->cl = cl;
	mh_server_take(cl);
	/* The handler may answer (and so free r) or free c: touch neither after. */
	c->handler(r, argc, argv, c->arg);
}

static enum mh_server_read on_data(struct mh_server_client *cl, char *buf, size_t len, size_t seen,
                                   void *arg)
{
	char *nl = memchr(buf + seen, '\n', len - seen);
	if (nl == NULL)
		return MH_SERVER_MORE;
	dispatch(arg, cl, buf, (size_t)(nl - buf)); /* bytes after the line are ignored */
	return MH_SERVER_DONE;
}

static void on_incomplete(struct mh_server_client *cl, enum mh_server_stall why, char *buf,
                          size_t len, void *arg)
{
	switch (why) {
	case MH_SERVER_EOF:
		if (len == 0)
			mh_server_close(cl); /* connected and left: nobody to answer */
		else
			bad_request(cl, "connection closed before the end of the request line");
		break;
	case MH_SERVER_TIMEOUT:
		bad_request(cl, "no complete request line within 5 s");
		break;
	case MH_SERVER_FULL:
		bad_request(cl, "request line longer than 1024 bytes");
		break;
	}
}

static const struct mh_server_ops control_ops = {
    .on_data = on_data,
    .on_incomplete = on_incomplete,
    .busy = "error\nbusy\n",
};

static const struct mh_server_conf control_conf = {
    .name = "control socket",
    .backlog = MH_CONTROL_BACKLOG,
    .max_clients = MH_CONTROL_CLIENTS,
    .max_request = MH_CONTROL_LINE_MAX + 1, /* the line and its "\n" */
    .read_timeout = MH_CONTROL_TIMEOUT,
    .write_timeout = MH_CONTROL_TIMEOUT,
    .data_size = sizeof(struct mh_control),
    .client_size = sizeof(struct mh_control_req),
};

struct mh_control *mh_control_new(struct ev_loop *loop, const char *spec, unsigned mode,
                                  mh_control_handler handler, void *arg, char *err, size_t errlen)
{
	struct mh_server *srv =
	    mh_server_new(loop, spec, mode, &control_conf, &control_ops, err, errlen);
	if (srv == NULL)
		return NULL;
	struct mh_control *c = mh_server_data(srv);
	*c = (struct mh_control){.srv = srv, .handler = handler, .arg = arg};
	return c;
}

void mh_control_reply(struct mh_control_req *r, int ok, const char *body)
{
	answer(r->cl, ok, body, MH_SERVER_CLOSE);
}

void mh_control_hold(struct mh_control_req *r, int ok, const char *body)
{
	answer(r->cl, ok, body, MH_SERVER_HOLD);
}

void mh_control_forget(struct mh_control *c)
{
	if (c != NULL)
		mh_server_forget(c->srv); /* c is part of it */
}

void mh_control_free(struct mh_control *c)
{
	if (c != NULL)
		mh_server_free(c->srv); /* c is part of it */
}
