/*
 * mh_http - a tiny HTTP/1.1 server for the master's statistics endpoint:
 * request parsing, status lines and headers on top of mh_server (which
 * does the socket work).
 *
 * SUMMARY
 *	mh_http_new() listens on a socket spec and serves one request per
 *	connection on the caller's libev loop: read the request head,
 *	check it, hand path and query to the handler, write its answer,
 *	close. Routes are the handler's business (the master's /metrics,
 *	/stats and /).
 *
 * A CONNECTION'S LIFE (the states are mh_server's)
 *	READING   until the blank line ending the head; at most
 *	          MH_HTTP_HEAD_MAX bytes within the read timeout (5 s),
 *	          else it is simply closed (timeout, EOF) or answered
 *	          414/431. A malformed head: 400; a method other than GET
 *	          and HEAD: 405; a version other than HTTP/1.x: 505.
 *	HANDLING  the handler has it; nothing is watched. It ends with
 *	          mh_http_respond(), at once or later.
 *	WRITING   the answer goes out without blocking, all of it within
 *	          the write timeout (10 s), or the connection is closed.
 *	LINGER    our side is shut down; whatever the client still sends
 *	          (the rest of an oversize head, a body) is read and
 *	          dropped until it closes, for at most MH_HTTP_LINGER s
 *	          and MH_HTTP_DRAIN_MAX bytes, so that the client gets the
 *	          answer instead of a reset.
 *	Bytes after the head (a body, a pipelined request) are ignored:
 *	every answer says "Connection: close". The Host header is not
 *	required (lenient to scripts; routes do not depend on it).
 *
 * LIMITS
 *	MH_HTTP_CLIENTS connections are served at once. One more is
 *	answered "503" (without reading its request) and lingers like the
 *	others; up to MH_HTTP_CLIENTS of those, beyond that a new
 *	connection is closed at once. accept() failing for lack of
 *	descriptors pauses accepting for a second instead of spinning.
 *
 * OWNERSHIP AND FORK
 *	As mh_control: requests belong to this module (they live in the
 *	mh_server client); the handler answers each exactly once;
 *	mh_http_free() drops unanswered ones. The handler may call
 *	mh_http_free() itself. mh_http_forget() (in a worker, after
 *	ev_loop_fork()) closes the descriptors and frees; it never
 *	unlinks. mh_http_free() unlinks a unix socket file only if the
 *	path still names the inode we created.
 *
 * DIAGNOSTICS
 *	mh_http_new(): one line in err ("http socket: bind inet:...: Address
 *	already in use"). At run time: accept failures are logged (warn); a
 *	client's misbehaviour is answered, not logged.
 */
#include "stats/mh_http.h"

#include "net/mh_server.h"
#include "util/mh_buf.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MH_HTTP_HEAD_MAX 8192 /* request line + headers, blank line included */
#define MH_HTTP_CLIENTS 32
#define MH_HTTP_LINGER 2.0
#define MH_HTTP_DRAIN_MAX (1024 * 1024) /* bytes read and dropped while lingering */
#define MH_HTTP_BACKLOG 64

static const char csp[] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                          "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

struct mh_http_req {
	struct mh_server_client *cl;
	int head_only; /* HEAD: the body is measured, not sent */
};

struct mh_http {
	struct mh_server *srv;
	mh_http_handler handler;
	void *arg;
};

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/* RFC 9110 IMF-fixdate, without the locale's day and month names. */
static void http_date(char *out, size_t n)
{
	static const char *const day[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", day[tm.tm_wday], tm.tm_mday,
	         mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Queue the whole answer and start writing it (r may be freed on return). */
static void req_answer(struct mh_http_req *r, int status, const char *content_type,
                       const void *body, size_t len)
{
	char date[64];
	assert(body != NULL || len == 0);
	http_date(date, sizeof(date));
	if (content_type == NULL)
		content_type = "text/plain; charset=utf-8";
	struct mh_buf *out = mh_server_out(r->cl);
	mh_buf_printf(out,
	              "HTTP/1.1 %d %s\r\n"
	              "Date: %s\r\n"
	              "Content-Type: %s\r\n"
	              "Content-Length: %zu\r\n"
	              "Cache-Control: no-store\r\n"
	              "X-Content-Type-Options: nosniff\r\n",
	              status, reason(status), date, content_type, len);
	if (strncasecmp(content_type, "text/html", 9) == 0)
		mh_buf_printf(out, "Content-Security-Policy: %s\r\n", csp);
	if (status == 405)
		mh_buf_append_str(out, "Allow: GET, HEAD\r\n");
	mh_buf_append_str(out, "Connection: close\r\n\r\n");
	if (!r->head_only && len > 0)
		mh_buf_append(out, body, len);
	mh_server_reply(r->cl, MH_SERVER_LINGER);
}

/* An answer of our own: the status line repeated as text/plain. */
static void req_error(struct mh_http_req *r, int status)
{
	char body[80];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
	req_answer(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* End of the head (offset after its blank line), 0 if not there yet. */
static size_t head_end(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Check the head in p[0..end) and call the handler, or answer an error. */
static void req_dispatch(struct mh_http *h, struct mh_http_req *r, char *p, size_t end)
{
	if (memchr(p, '\0', end) != NULL) {
		req_error(r, 400);
		return;
	}
	p[end] = '\0';
	/* Header lines: "name: value", no obsolete line folding (RFC 9112 §5.2: 400). */
	char *line = strchr(p, '\n') + 1;
	while (*line != '\r' && *line != '\n') {
		char *nl = strchr(line, '\n');
		char *colon = memchr(line, ':', (size_t)(nl - line));
		if (*line == ' ' || *line == '\t' || colon == NULL || colon == line) {
			req_error(r, 400);
			return;
		}
		line = nl + 1;
	}
	/* The request line: METHOD SP TARGET SP VERSION. */
	char *eol = strchr(p, '\n');
	if (eol > p && eol[-1] == '\r')
		eol--;
	*eol = '\0';
	char *sp1 = strchr(p, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
		req_error(r, 400);
		return;
	}
	*sp1 = *sp2 = '\0';
	const char *method = p, *version = sp2 + 1;
	char *target = sp1 + 1;
	if (strncmp(version, "HTTP/", 5) != 0) {
		req_error(r, 400);
		return;
	}
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
		req_error(r, 505);
		return;
	}
	if (strcmp(method, "HEAD") == 0)
		r->head_only = 1;
	else if (strcmp(method, "GET") != 0) {
		req_error(r, 405);
		return;
	}
	if (target[0] != '/') {
		req_error(r, 400);
		return;
	}
	for (const char *c = target; *c; c++)
		if ((unsigned char)*c < 0x21 || *c == 0x7f) {
			req_error(r, 400);
			return;
		}
	const char *query = "";
	char *q = strchr(target, '?');
	if (q != NULL) {
		*q = '\0';
		query = q + 1;
	}
	mh_server_take(r->cl);
	h->handler(r, target, query, h->arg); /* r may be dead now, h too */
}

static struct mh_http_req *req_of(struct mh_server_client *cl)
{
	struct mh_http_req *r = mh_server_client_data(cl);
	r->cl = cl;
	return r;
}

static enum mh_server_read on_data(struct mh_server_client *cl, char *buf, size_t len, size_t seen,
                                   void *arg)
{
	/* The blank line may straddle two reads: look again from 3 bytes back. */
	size_t from = seen > 3 ? seen - 3 : 0;
	size_t end = head_end(buf + from, len - from);
	if (end == 0)
		return MH_SERVER_MORE;
	req_dispatch(arg, req_of(cl), buf, from + end);
	return MH_SERVER_DONE;
}

static void on_incomplete(struct mh_server_client *cl, enum mh_server_stall why, char *buf,
                          size_t len, void *arg)
{
	if (why == MH_SERVER_FULL)
		req_error(req_of(cl), memchr(buf, '\n', len) == NULL ? 414 : 431);
	else
		mh_server_close(cl); /* gave up, or too slow, before the head was complete */
}

static void on_busy(struct mh_server_client *cl, void *arg)
{
	req_error(req_of(cl), 503);
}

static const struct mh_server_ops http_ops = {
    .on_data = on_data,
    .on_incomplete = on_incomplete,
    .on_busy = on_busy,
};

static const struct mh_server_conf http_conf = {
    .name = "http socket",
    .backlog = MH_HTTP_BACKLOG,
    .nodelay = 1,
    .max_clients = MH_HTTP_CLIENTS,
    .max_busy = MH_HTTP_CLIENTS, /* answered 503 */
    .max_request = MH_HTTP_HEAD_MAX,
    .read_timeout = MH_HTTP_READ_TIMEOUT,
    .write_timeout = MH_HTTP_WRITE_TIMEOUT,
    .linger = MH_HTTP_LINGER,
    .drain_max = MH_HTTP_DRAIN_MAX,
    .data_size = sizeof(struct mh_http),
    .client_size = sizeof(struct mh_http_req),
};

struct mh_http *mh_http_new(struct ev_loop *loop, const char *spec, mh_http_handler handler,
                            void *arg, char *err, size_t errlen)
{
	/* mode 0: the umask's, as mh_http.h promises. */
	struct mh_server *srv = mh_server_new(loop, spec, 0, &http_conf, &http_ops, err, errlen);
	if (srv == NULL)
		return NULL;
	struct mh_http *h = mh_server_data(srv);
	*h = (struct mh_http){.srv = srv, .handler = handler, .arg = arg};
	return h;
}

int mh_http_port(const struct mh_http *h)
{
	return mh_server_port(h->srv);
}

void mh_http_set_timeouts(struct mh_http *h, double read_s, double write_s)
{
	mh_server_set_timeouts(h->srv, read_s, write_s);
}

void mh_http_respond(struct mh_http_req *r, int status, const char *content_type, const void *body,
                     size_t len)
{
	req_answer(r, status, content_type, body, len);
}

void mh_http_forget(struct mh_http *h)
{
	if (h != NULL)
		mh_server_forget(h->srv); /* h is part of it */
}

void mh_http_free(struct mh_http *h)
{
	if (h != NULL)
		mh_server_free(h->srv); /* h is part of it */
}
