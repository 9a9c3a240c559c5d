/*
 * mh_http - a tiny HTTP/1.1 server on the master's libev loop, for
 * /metrics, /stats and the status page (issue 6). Transport only: what
 * a path means is the handler's business.
 *
 * One request per connection: GET or HEAD, answered with
 * "Connection: close". Request line plus headers at most 8 KiB,
 * received within 5 s of the accept; the answer is written without
 * blocking within 10 s. At most 32 clients at once; one more is
 * answered 503 and closed. Bad requests get 400 (malformed), 405 (not
 * GET/HEAD), 414 (request line over the limit), 431 (headers over it),
 * without bothering the handler.
 *
 * Ownership: struct mh_http_req belongs to this module. The handler
 * gets it and must answer it with mh_http_respond() exactly once, at
 * once or later from the loop; after that the pointer is dead.
 * mh_http_free() drops requests still unanswered: their pointers are
 * dead too (the owner must forget them first).
 */
#ifndef MH_HTTP_H
#define MH_HTTP_H

#include <ev.h>
#include <stddef.h>

struct mh_http;
struct mh_http_req;

/*
 * Called once per well-formed GET/HEAD request. path is the request
 * target up to '?' (starts with '/', not decoded), query what follows
 * '?' ("" when none); both are valid during the call only. For HEAD the
 * body given to mh_http_respond is measured and not sent.
 */
typedef void (*mh_http_handler)(struct mh_http_req *r, const char *path, const char *query,
                                void *arg);

/*
 * Listen on spec ("inet:9425@127.0.0.1", "unix:/run/milterhub/http.sock",
 * any mh_sockspec form; a unix socket is created with mode 0666 minus
 * the umask). Returns NULL with a one-line reason in err.
 */
struct mh_http *mh_http_new(struct ev_loop *loop, const char *spec, mh_http_handler h, void *arg,
                            char *err, size_t errlen);

/* The TCP port listened on (useful after "inet:0@127.0.0.1"); -1 for a unix socket. */
int mh_http_port(const struct mh_http *h);

/*
 * Timeouts in seconds for reading the request and writing the answer
 * (defaults MH_HTTP_READ_TIMEOUT, MH_HTTP_WRITE_TIMEOUT); for tests.
 * Applies to connections accepted afterwards.
 */
#define MH_HTTP_READ_TIMEOUT 5.0
#define MH_HTTP_WRITE_TIMEOUT 10.0
void mh_http_set_timeouts(struct mh_http *h, double read_s, double write_s);

/*
 * Answer r: status (200, 404, ...), content_type (e.g. "application/json"),
 * body of len bytes (copied; may be NULL when len is 0). Adds
 * Content-Length, Cache-Control: no-store, Connection: close, and for
 * text/html a Content-Security-Policy that loads nothing from anywhere
 * (inline styles and data: images only). Then r is dead.
 */
void mh_http_respond(struct mh_http_req *r, int status, const char *content_type, const void *body,
                     size_t len);

/* In a worker after fork(): close every descriptor, free, unlink nothing. */
void mh_http_forget(struct mh_http *h);
/* Close clients and the socket; remove the unix socket file if still ours. */
void mh_http_free(struct mh_http *h);

#endif
