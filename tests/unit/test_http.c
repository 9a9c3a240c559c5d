/*
 * test_http - the statistics endpoint's HTTP server (mh_http.h) over real
 * loopback TCP (and one unix socket): routes reach the handler, exact
 * response headers, HEAD, the errors answered without the handler
 * (400/405/414/431/505), the read and write deadlines, the client limit
 * (503), an answer given later from a timer, and mh_http_free() with
 * clients connected.
 *
 * The server's loop and the test's client sockets share one thread: every
 * client wait pumps the loop (ev_run EVRUN_NOWAIT) between polls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "stats/mh_http.h"
#include "util/mh_buf.h"

#define HTML_BODY "<p>hi</p>"

struct fixture {
	struct ev_loop *loop;
	struct mh_http *http;
	int port;
	int calls; /* handler calls */
	char path[256];
	char query[256];
	struct mh_http_req *held; /* /later, /hold: answered later or never */
	ev_timer later;
	size_t big_len; /* /big: body size */
	char *big;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pump(struct fixture *f, double seconds)
{
	double end = now_s() + seconds;
	do {
		ev_run(f->loop, EVRUN_NOWAIT);
		usleep(1000);
	} while (now_s() < end);
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fixture *f = w->data;
	struct mh_http_req *r = f->held;
	f->held = NULL;
	mh_http_respond(r, 200, "text/plain; charset=utf-8", "late\n", 5);
}

static void handler(struct mh_http_req *r, const char *path, const char *query, void *arg)
{
	struct fixture *f = arg;
	f->calls++;
	snprintf(f->path, sizeof(f->path), "%s", path);
	snprintf(f->query, sizeof(f->query), "%s", query);
	if (strcmp(path, "/") == 0) {
		mh_http_respond(r, 200, "text/html; charset=utf-8", HTML_BODY, strlen(HTML_BODY));
	} else if (strcmp(path, "/metrics") == 0) {
		mh_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", "m 1\n", 4);
	} else if (strcmp(path, "/later") == 0) {
		f->held = r;
		ev_timer_init(&f->later, on_later, 0.05, 0);
		f->later.data = f;
		ev_timer_start(f->loop, &f->later);
	} else if (strcmp(path, "/hold") == 0) {
		f->held = r; /* never answered: mh_http_free drops it */
	} else if (strcmp(path, "/big") == 0) {
		mh_http_respond(r, 200, "application/octet-stream", f->big, f->big_len);
	} else {
		mh_http_respond(r, 404, "text/plain; charset=utf-8", "not found\n", 10);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	char err[256];
	f->http = mh_http_new(f->loop, "inet:0@127.0.0.1", handler, f, err, sizeof(err));
	if (f->http == NULL) {
		fprintf(stderr, "mh_http_new: %s\n", err);
		return -1;
	}
	f->port = mh_http_port(f->http);
	*state = f;
	return f->port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	ev_timer_stop(f->loop, &f->later);
	mh_http_free(f->http);
	ev_loop_destroy(f->loop);
	free(f->big);
	free(f);
	return 0;
}

/* ------------------------------------------------------------- clients */

static int client(struct fixture *f)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void client_send(struct fixture *f, int fd, const char *s, size_t n)
{
	double end = now_s() + 5;
	while (n > 0) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			assert_true(now_s() < end);
			pump(f, 0.001);
			continue;
		}
		s += k;
		n -= (size_t)k;
	}
}

/*
 * Read until EOF (or a reset), pumping the server, at most `seconds`.
 * Returns what was read (NUL-terminated, caller frees); *closed = 1 when
 * the server closed.
 */
static char *client_read(struct fixture *f, int fd, double seconds, size_t *len, int *closed)
{
	struct mh_buf b = MH_BUF_INIT;
	double end = now_s() + seconds;
	*closed = 0;
	while (now_s() < end) {
		ev_run(f->loop, EVRUN_NOWAIT);
		char tmp[65536];
		ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
		if (k > 0) {
			mh_buf_append(&b, tmp, (size_t)k);
			continue;
		}
		if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			*closed = 1;
			break;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 1);
	}
	if (len)
		*len = mh_buf_size(&b);
	char *s = mh_xstrdup(b.data ? (const char *)mh_buf_head(&b) : "");
	mh_buf_free(&b);
	return s;
}

/* One request, the whole answer; asserts the server closed afterwards. */
static char *exchange(struct fixture *f, const char *req)
{
	int fd = client(f);
	client_send(f, fd, req, strlen(req));
	int closed;
	char *resp = client_read(f, fd, 5, NULL, &closed);
	assert_true(closed);
	close(fd);
	return resp;
}

/* The answer without its Date line (the only one that varies). */
static char *strip_date(char *resp)
{
	char *d = strstr(resp, "\r\nDate: ");
	assert_non_null(d);
	char *e = strstr(d + 2, "\r\n");
	assert_non_null(e);
	memmove(d, e, strlen(e) + 1);
	return resp;
}

static int status_of(const char *resp)
{
	int st = 0;
	if (sscanf(resp, "HTTP/1.1 %d ", &st) != 1)
		return -1;
	return st;
}

/* --------------------------------------------------------------- tests */

static void get_root_reaches_handler_with_exact_headers(void **state)
{
	struct fixture *f = *state;
	char *resp = exchange(f, "GET /?a=1&b=2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
	assert_int_equal(f->calls, 1);
	assert_string_equal(f->path, "/");
	assert_string_equal(f->query, "a=1&b=2");
	assert_string_equal(
	    strip_date(resp),
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: 9\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
	    "img-src data:; frame-ancestors 'none'; base-uri 'none'; "
	    "form-action 'none'\r\n"
	    "Connection: close\r\n"
	    "\r\n" HTML_BODY);
	free(resp);
}

static void metrics_has_no_csp_and_query_defaults_to_empty(void **state)
{
	struct fixture *f = *state;
	char *resp = exchange(f, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_string_equal(f->path, "/metrics");
	assert_string_equal(f->query, "");
	assert_string_equal(strip_date(resp),
	                    "HTTP/1.1 200 OK\r\n"
	                    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	                    "Content-Length: 4\r\n"
	                    "Cache-Control: no-store\r\n"
	                    "X-Content-Type-Options: nosniff\r\n"
	                    "Connection: close\r\n"
	                    "\r\n"
	                    "m 1\n");
	free(resp);
}

static void handler_404(void **state)
{
	struct fixture *f = *state;
	char *resp = exchange(f, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(status_of(resp), 404);
	assert_non_null(strstr(resp, "\r\n\r\nnot found\n"));
	assert_string_equal(f->path, "/nope");
	free(resp);
}

static void head_has_length_but_no_body(void **state)
{
	struct fixture *f = *state;
	char *resp = exchange(f, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(f->calls, 1);
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "\r\nContent-Length: 9\r\n"));
	size_t n = strlen(resp);
	assert_true(n > 4 && strcmp(resp + n - 4, "\r\n\r\n") == 0);
	free(resp);
}

static void post_is_405_without_handler(void **state)
{
	struct fixture *f = *state;
	char *resp = exchange(f, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
	assert_int_equal(f->calls, 0);
	assert_int_equal(status_of(resp), 405);
	assert_non_null(strstr(resp, "\r\nAllow: GET, HEAD\r\n"));
	free(resp);
}

static void malformed_requests_are_400_or_505(void **state)
{
	struct fixture *f = *state;
	static const char *const bad400[] = {
	    "GARBAGE\r\n\r\n",
	    "GET /\r\n\r\n",
	    "GET  / HTTP/1.1\r\n\r\n",
	    "GET / HTTP/1.1 x\r\n\r\n",
	    "GET nope HTTP/1.1\r\n\r\n",
	    "GET / FTP/1.0\r\n\r\n",
	    "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
	    "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++) {
		char *resp = exchange(f, bad400[i]);
		if (status_of(resp) != 400)
			fail_msg("'%s' answered: %s", bad400[i], resp);
		free(resp);
	}
	char *resp = exchange(f, "GET / HTTP/2.0\r\n\r\n");
	assert_int_equal(status_of(resp), 505);
	free(resp);
	/* A NUL inside the head. */
	int fd = client(f);
	client_send(f, fd, "GET /\0 HTTP/1.1\r\n\r\n", 19);
	int closed;
	resp = client_read(f, fd, 5, NULL, &closed);
	close(fd);
	assert_int_equal(status_of(resp), 400);
	free(resp);
	assert_int_equal(f->calls, 0);
}

static void head_arriving_in_pieces(void **state)
{
	struct fixture *f = *state;
	static const char *const parts[] = {"GE", "T /metrics HTTP/1.1\r\nHost: x\r\n", "\r", "\n"};
	int fd = client(f);
	for (size_t i = 0; i < 4; i++) {
		client_send(f, fd, parts[i], strlen(parts[i]));
		pump(f, 0.02);
		assert_int_equal(f->calls, i == 3 ? 1 : 0);
	}
	int closed;
	char *resp = client_read(f, fd, 5, NULL, &closed);
	close(fd);
	assert_int_equal(status_of(resp), 200);
	free(resp);
}

static void long_request_line_is_414_long_headers_431(void **state)
{
	struct fixture *f = *state;
	enum { n = 9000 };
	static char req[n + 64];
	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', n);
	strcpy(req + 5 + n, " HTTP/1.1\r\n\r\n");
	char *resp = exchange(f, req);
	assert_int_equal(status_of(resp), 414);
	free(resp);

	int k = sprintf(req, "GET / HTTP/1.1\r\nX: ");
	memset(req + k, 'b', n);
	strcpy(req + k + n, "\r\n\r\n");
	resp = exchange(f, req);
	assert_int_equal(status_of(resp), 431);
	free(resp);
	assert_int_equal(f->calls, 0);
}

static void silent_client_is_closed_after_read_timeout(void **state)
{
	struct fixture *f = *state;
	mh_http_set_timeouts(f->http, 0.2, 10);
	int fd = client(f);
	client_send(f, fd, "GET / HT", 8);
	double t0 = now_s();
	int closed;
	size_t len;
	char *resp = client_read(f, fd, 5, &len, &closed);
	double dt = now_s() - t0;
	close(fd);
	assert_true(closed);
	assert_int_equal(len, 0);
	assert_true(dt >= 0.15 && dt < 2);
	assert_int_equal(f->calls, 0);
	free(resp);
}

static void slow_reader_is_closed_after_write_timeout(void **state)
{
	struct fixture *f = *state;
	mh_http_set_timeouts(f->http, 5, 0.2);
	f->big_len = (size_t)64 << 20; /* more than loopback buffers hold */
	f->big = calloc(1, f->big_len);
	int fd = client(f);
	client_send(f, fd, "GET /big HTTP/1.1\r\n\r\n", 21);
	pump(f, 0.5); /* the client reads nothing meanwhile */
	int closed;
	size_t len;
	char *resp = client_read(f, fd, 5, &len, &closed);
	close(fd);
	assert_true(closed);
	assert_int_equal(status_of(resp), 200);
	assert_true(len < f->big_len);
	free(resp);
}

static void client_beyond_32_gets_503(void **state)
{
	struct fixture *f = *state;
	int fds[32];
	for (int i = 0; i < 32; i++)
		fds[i] = client(f);
	pump(f, 0.1); /* all 32 accepted, all silent */
	int fd = client(f);
	client_send(f, fd, "GET / HTTP/1.1\r\n\r\n", 18);
	int closed;
	char *resp = client_read(f, fd, 5, NULL, &closed);
	close(fd);
	assert_true(closed);
	assert_int_equal(status_of(resp), 503);
	assert_int_equal(f->calls, 0);
	free(resp);
	/* Once one leaves, a new client is served again. */
	close(fds[0]);
	pump(f, 0.1);
	resp = exchange(f, "GET / HTTP/1.1\r\n\r\n");
	assert_int_equal(status_of(resp), 200);
	free(resp);
	for (int i = 1; i < 32; i++)
		close(fds[i]);
}

static void handler_answering_later_from_a_timer(void **state)
{
	struct fixture *f = *state;
	double t0 = now_s();
	char *resp = exchange(f, "GET /later HTTP/1.1\r\n\r\n");
	assert_true(now_s() - t0 >= 0.04);
	assert_null(f->held);
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "\r\nContent-Length: 5\r\n"));
	assert_non_null(strstr(resp, "\r\n\r\nlate\n"));
	free(resp);
}

static void free_with_clients_connected_closes_them(void **state)
{
	struct fixture *f = *state;
	int silent = client(f);
	int held = client(f);
	client_send(f, held, "GET /hold HTTP/1.1\r\n\r\n", 22);
	pump(f, 0.1);
	assert_non_null(f->held);
	mh_http_free(f->http);
	f->http = NULL;
	f->held = NULL; /* dead with the server */
	int closed;
	size_t len;
	char *resp = client_read(f, silent, 2, &len, &closed);
	assert_true(closed);
	assert_int_equal(len, 0);
	free(resp);
	resp = client_read(f, held, 2, &len, &closed);
	assert_true(closed);
	assert_int_equal(len, 0);
	free(resp);
	close(silent);
	close(held);
}

static void unix_socket_serves_and_free_unlinks(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/test_http.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], spec[96], err[256];
	snprintf(path, sizeof(path), "%s/http.sock", dir);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	struct mh_http *u = mh_http_new(f->loop, spec, handler, f, err, sizeof(err));
	assert_non_null(u);
	assert_int_equal(mh_http_port(u), -1);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	client_send(f, fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	int closed;
	char *resp = client_read(f, fd, 5, NULL, &closed);
	close(fd);
	assert_int_equal(status_of(resp), 200);
	free(resp);

	struct stat st;
	mh_http_free(u);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* forget() (a forked worker) leaves the file alone. */
	u = mh_http_new(f->loop, spec, handler, f, err, sizeof(err));
	assert_non_null(u);
	mh_http_forget(u);
	assert_int_equal(stat(path, &st), 0);
	unlink(path);
	rmdir(dir);
}

static void bad_spec_is_an_error(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	assert_null(mh_http_new(f->loop, "inet:notaport@127.0.0.1", handler, f, err, sizeof(err)));
	assert_non_null(strstr(err, "http socket: "));
	char spec[64];
	snprintf(spec, sizeof(spec), "inet:%d@127.0.0.1", f->port);
	assert_null(mh_http_new(f->loop, spec, handler, f, err, sizeof(err))); /* in use */
	assert_non_null(strstr(err, "http socket: "));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(get_root_reaches_handler_with_exact_headers),
	    T(metrics_has_no_csp_and_query_defaults_to_empty),
	    T(handler_404),
	    T(head_has_length_but_no_body),
	    T(post_is_405_without_handler),
	    T(malformed_requests_are_400_or_505),
	    T(head_arriving_in_pieces),
	    T(long_request_line_is_414_long_headers_431),
	    T(silent_client_is_closed_after_read_timeout),
	    T(slow_reader_is_closed_after_write_timeout),
	    T(client_beyond_32_gets_503),
	    T(handler_answering_later_from_a_timer),
	    T(free_with_clients_connected_closes_them),
	    T(unix_socket_serves_and_free_unlinks),
	    T(bad_spec_is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
