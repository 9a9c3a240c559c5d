/*
 * fuzz_child_link - libFuzzer target for one child link (mh_child): the
 * harness plays the hub, sending a fixed session (C H M R R T L L N B B E,
 * optionally A and a second message, then Q) with mh_child_send whenever
 * the previous command was answered; the fuzz input is everything the
 * "child" replies (random replies, modifications at the wrong stage,
 * undeclared actions, oversize or truncated packets).
 *
 * Input: byte 0 holds flags, the rest is the child's reply stream.
 *   bit 0  prepend a valid 'O' reply (v6, every action, protocol flags
 *          from bytes 1-4, which are then consumed), so the fuzzer starts
 *          past negotiation; clear: the stream's first frame must be it
 *   bit 1  after the first R is answered: mh_child_abort, then a second
 *          message (M R T L N B E) before Q
 *   bit 2  end with mh_child_free instead of mh_child_quit
 * The stream is cut at frame boundaries (a length that runs past the end
 * makes the rest one truncated chunk) and one chunk is written per step
 * while a command waits, so replies land at the stage the fuzzer chose.
 * When the stream runs out the child end is shut: EOF. Every command
 * that waits must end in on_answer (the link's fallback when it failed),
 * within a bounded number of steps: else abort. LeakSanitizer checks the
 * rest. Built and run by build-and-run.sh.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "child/mh_child.h"
#include "net/mh_sockspec.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STEPS_MAX 20000
#define STEPS_AFTER_EOF 400

static struct ev_loop *loop;
static char sock_dir[64];
static struct mh_child_conf conf;
static int lfd = -1;

/* -------------------------------------------------- the hub's session */

struct step {
	uint8_t code;
	const char *payload;
	size_t len;
};

#define S(code, lit)                                                                               \
	{                                                                                          \
		code, lit, sizeof(lit) - 1                                                         \
	}
static const struct step first[] = {
    S('C', "mx.example\0"
           "4\x00\x19"
           "192.0.2.1\0"),
    S('H', "client.example\0"),
    S('M', "<a@example.org>\0SIZE=10\0"),
    S('R', "<b@example.net>\0"),
    S('R', "<c@example.net>\0"),
    S('T', ""),
    S('L', "Subject\0hello\0"),
    S('L', "From\0<a@example.org>\0"),
    S('N', ""),
    S('B', "body line\r\n"),
    S('B', "second\r\n"),
    S('E', ""),
};
static const struct step second[] = {
    S('M', "<d@example.org>\0"),
    S('R', "<e@example.net>\0"),
    S('T', ""),
    S('L', "X-Two\0two\0"),
    S('N', ""),
    S('B', "two\r\n"),
    S('E', ""),
};
#undef S

static const char *const conn_macros[] = {"j", "mx.example", "{daemon_name}", "fuzz"};
static const char *const mail_macros[] = {"i", "ABC123", "{auth_type}", "PLAIN"};

struct run {
	struct mh_child *c;
	int negotiated; /* -1 waiting, 0 failed, 1 ok */
	int waiting; /* a command waits for on_answer */
	int answers, mods;
	int aborted; /* bit 1 done */
	const struct step *seq;
	size_t nseq, next;
	uint8_t flags;
};

static void on_negotiated(struct mh_child *c, int ok, void *arg)
{
	struct run *r = arg;
	r->negotiated = ok;
}

static void on_answer(struct mh_child *c, const struct mh_child_answer *a, void *arg)
{
	struct run *r = arg;

	if (a->failed && (a->status != conf.fallback || !mh_child_dead(c))) {
		fprintf(stderr, "fuzz_child_link: a failure that is not the fallback\n");
		abort();
	}
	r->waiting = 0;
	r->answers++;
}

static void on_progress(struct mh_child *c, void *arg) {}

static volatile size_t sink;

static void on_modification(struct mh_child *c, const struct mh_reply *mod, void *arg)
{
	struct run *r = arg;
	r->mods++;
	sink += mod->code;
}

static const struct mh_child_ops ops = {on_negotiated, on_answer, on_progress, on_modification};

/* Send commands until one waits or the session is over (returns 1). */
static int send_next(struct run *r)
{
	while (!r->waiting) {
		const struct step *s;
		const char *const *pairs = NULL;
		size_t npairs = 0;

		if (r->next == r->nseq) {
			if (r->seq == first && (r->flags & 2)) {
				r->seq = second;
				r->nseq = sizeof second / sizeof second[0];
				r->next = 0;
				continue;
			}
			return 1;
		}
		s = &r->seq[r->next++];
		if (s->code == 'C') {
			pairs = conn_macros;
			npairs = 2;
		} else if (s->code == 'M') {
			pairs = mail_macros;
			npairs = 2;
		}
		if (mh_child_send(r->c, s->code, s->payload, s->len, pairs, npairs) ==
		    MH_CHILD_WAIT)
			r->waiting = 1;
		if (s->code == 'R' && (r->flags & 2) && !r->aborted && r->seq == first) {
			/* The answer to R may still be on its way: abort cancels it. */
			r->aborted = 1;
			mh_child_abort(r->c);
			r->waiting = 0;
			r->next = r->nseq; /* go on with the second message */
		}
	}
	return 0;
}

/* ------------------------------------------------------------- set-up */

/* libFuzzer ends with exit(): leave no socket directory behind. */
static void remove_sock_dir(void)
{
	char path[128];

	snprintf(path, sizeof path, "%s/child.sock", sock_dir);
	(void)unlink(path);
	(void)rmdir(sock_dir);
}

static void init_once(void)
{
	char spec[128], err[256];
	struct mh_sockspec s;

	signal(SIGPIPE, SIG_IGN);
	/* FUZZ_VERBOSE=1: the modules' debug log, to see how far a seed gets. */
	mh_log_set_level(getenv("FUZZ_VERBOSE") ? MH_LOG_DEBUG : MH_LOG_ERR);
	loop = ev_default_loop(EVFLAG_AUTO);
	snprintf(sock_dir, sizeof sock_dir, "%s/mhfuzz.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (strlen(sock_dir) > 40 || mkdtemp(sock_dir) == NULL) {
		perror("fuzz_child_link: mkdtemp");
		abort();
	}
	atexit(remove_sock_dir);
	snprintf(spec, sizeof spec, "unix:%s/child.sock", sock_dir);
	if (mh_sockspec_parse(spec, &conf.sock, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_child_link: %s: %s\n", spec, err);
		abort();
	}
	conf.name = "fuzz";
	conf.kind = MH_CHILD_MILTER;
	conf.socket_text = conf.sock.text;
	conf.fallback = MH_ST_TEMPFAIL;
	/* Never reached: the harness's steps take milliseconds. */
	conf.connect_timeout = 30;
	conf.write_timeout = 30;
	conf.read_timeout = 30;
	conf.eom_timeout = 30;
	conf.enabled = 1;
	s = conf.sock;
	lfd = mh_sockspec_listen(&s, 16, 0600, err, sizeof err);
	if (lfd < 0) {
		fprintf(stderr, "fuzz_child_link: listen: %s\n", err);
		abort();
	}
}

/* ------------------------------------------------------------- driver */

/* Length of the next chunk of the reply stream: one frame, or the truncated rest. */
static size_t next_chunk(const uint8_t *p, size_t n)
{
	uint32_t len;

	if (n < 4)
		return n;
	len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (len > n - 4)
		return n;
	return 4 + (size_t)len;
}

static void drain(int fd)
{
	uint8_t junk[4096];

	while (read(fd, junk, sizeof junk) > 0)
		;
}

static void put_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EAGAIN) {
			ev_run(loop, EVRUN_NOWAIT);
			continue;
		}
		return; /* the link closed */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mh_optneg offer = {.version = 6, .actions = MH_ACT_V6_MASK, .protocol = 0};
	struct run r;
	char err[256];
	int cfd = -1, eof = 0, steps, after_eof = 0, done = 0;

	if (loop == NULL)
		init_once();
	if (size < 1)
		return 0;
	memset(&r, 0, sizeof r);
	r.flags = data[0];
	r.negotiated = -1;
	r.seq = first;
	r.nseq = sizeof first / sizeof first[0];
	data++;
	size--;

	r.c = mh_child_new(loop, &conf, &offer, 1, &ops, &r, err, sizeof err);
	if (r.c == NULL) {
		fprintf(stderr, "fuzz_child_link: mh_child_new: %s\n", err);
		abort();
	}
	/* The connect to our own listening socket completes at once. */
	for (steps = 0; cfd < 0 && steps < 100; steps++) {
		cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			ev_run(loop, EVRUN_NOWAIT);
	}
	if (cfd < 0) {
		fprintf(stderr, "fuzz_child_link: the link never connected\n");
		abort();
	}

	if (r.flags & 1) {
		struct mh_buf b = MH_BUF_INIT;
		uint32_t proto = 0;
		size_t i;
		for (i = 0; i < 4 && size > 0; i++, data++, size--)
			proto = proto << 8 | *data;
		{
			struct mh_optneg o = {.version = 6,
			                      .actions = MH_ACT_V6_MASK,
			                      .protocol = proto & MH_PROTO_V6_MASK};
			mh_codec_put_optneg(&b, &o);
		}
		put_all(cfd, b.data + b.off, b.len - b.off);
		mh_buf_free(&b);
	} else if (size > 0) {
		size_t n = next_chunk(data, size);
		put_all(cfd, data, n);
		data += n;
		size -= n;
	}

	for (steps = 0; steps < STEPS_MAX; steps++) {
		ev_run(loop, EVRUN_NOWAIT);
		drain(cfd);
		if (r.negotiated == 0)
			break; /* failed in negotiation: nothing more to drive */
		if (r.negotiated == 1 && !r.waiting && send_next(&r)) {
			done = 1;
			break;
		}
		if (size > 0) {
			size_t n = next_chunk(data, size);
			put_all(cfd, data, n);
			data += n;
			size -= n;
		} else if (!eof) {
			shutdown(cfd, SHUT_WR);
			eof = 1;
		} else if (++after_eof > STEPS_AFTER_EOF) {
			fprintf(stderr,
			        "fuzz_child_link: no answer %d steps after EOF (negotiated %d, "
			        "waiting %d, dead %d)\n",
			        STEPS_AFTER_EOF, r.negotiated, r.waiting, mh_child_dead(r.c));
			abort();
		}
	}
	if (steps == STEPS_MAX) {
		fprintf(stderr, "fuzz_child_link: session never ended\n");
		abort();
	}
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr,
		        "fuzz_child_link: negotiated %d, %d answers, %d modifications, "
		        "%s message step %zu, failure \"%s\"\n",
		        r.negotiated, r.answers, r.mods, r.seq == first ? "first" : "second",
		        r.next, mh_child_failure(r.c));
	if (done && !(r.flags & 4))
		mh_child_quit(r.c);
	else
		mh_child_free(r.c);
	close(cfd);
	return 0;
}
