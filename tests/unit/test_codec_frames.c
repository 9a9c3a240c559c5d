/*
 * test_codec_frames - the milter frame reader (protocol/mh_codec.h):
 * frame lengths and limits, the reader's buffer and idle state, and a
 * stream that decodes the same however it is cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_testutil.h"

/* ------------------------------------------------------------ frames */

static void smallest_frame_is_a_continue(void **state)
{
	struct fx *f = *state;

	mh_buf_append(&f->b, RAW("\0\0\0\1c"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_CONTINUE);
	assert_int_equal(f->p.len, 0);
	assert_int_equal(f->p.data[0], 0);
}

static void frame_length_zero_is_ezero_and_sticky(void **state)
{
	struct fx *f = *state;
	size_t used = 99;

	/* Detected after the 4 length bytes: a 0 length has no code byte. */
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\0c\0\0\0\1c"), &used, &f->p),
	                 MH_CODEC_EZERO);
	assert_int_equal(used, 4);
	assert_false(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\1c"), &used, &f->p), MH_CODEC_EZERO);
	assert_int_equal(used, 0);
}

static void frame_above_max_payload_is_etoobig_before_allocating(void **state)
{
	struct fx *f = *state;
	struct mh_frame_reader r;
	size_t used;
	uint8_t frame[5 + 17];

	mh_frame_reader_init(&r, 16);
	memset(frame, 'x', sizeof(frame));
	memcpy(frame, "\0\0\0\x11", 4); /* len 17: payload 16, the maximum */
	assert_int_equal(mh_frame_feed(&r, frame, 5 + 16, &used, &f->p), 1);
	assert_int_equal(f->p.len, 16);
	assert_int_equal(r.buf_cap, 17);

	memcpy(frame, "\0\0\0\x12", 4); /* payload 17 */
	assert_int_equal(mh_frame_feed(&r, frame, 4, &used, &f->p), MH_CODEC_ETOOBIG);
	assert_int_equal(used, 4);
	assert_int_equal(r.buf_cap, 17);
	mh_frame_reader_free(&r);

	/* A 4 GB length must not allocate anything. */
	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	assert_int_equal(mh_frame_feed(&r, RAW("\xff\xff\xff\xff"), &used, &f->p),
	                 MH_CODEC_ETOOBIG);
	assert_null(r.buf);
	assert_int_equal(mh_frame_feed(&r, RAW("\0\0\0\1c"), &used, &f->p), MH_CODEC_ETOOBIG);
	mh_frame_reader_free(&r);
}

static void reader_buffer_grows_to_the_largest_frame(void **state)
{
	struct fx *f = *state;
	static uint8_t body[1000];
	size_t sizes[] = {10, 1000, 5, 999, 0};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		mh_codec_put_raw(&f->b, MH_CMD_BODY, body, sizes[i]);
		frame_one(f);
		assert_int_equal(f->p.len, sizes[i]);
		assert_int_equal(f->p.data[sizes[i]], 0); /* the NUL the reader adds */
	}
	assert_int_equal(f->r.buf_cap, 1001);
}

static void reader_appends_nul_after_payload(void **state)
{
	struct fx *f = *state;

	mh_codec_put_raw(&f->b, MH_CMD_BODY, "abc", 3);
	frame_one(f);
	assert_int_equal(f->p.len, 3);
	assert_memory_equal(f->p.data, "abc", 4);
}

static void reader_stops_after_each_frame_and_reports_idle(void **state)
{
	struct fx *f = *state;
	const uint8_t two[] = {0, 0, 0, 1, 'c', 0, 0, 0, 2, 'H'};
	size_t used;

	assert_true(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, two, sizeof(two), &used, &f->p), 1);
	assert_int_equal(used, 5);
	assert_int_equal(f->p.code, 'c');
	assert_true(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, two + 5, 5, &used, &f->p), 0);
	assert_int_equal(used, 5);
	assert_false(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, NULL, 0, &used, &f->p), 0);
	assert_int_equal(used, 0);
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0"), &used, &f->p), 1);
	assert_int_equal(f->p.code, 'H');
	assert_int_equal(f->p.len, 1);
	assert_true(mh_frame_reader_idle(&f->r));
}

static void reader_free_allows_reuse(void **state)
{
	struct fx *f = *state;
	size_t used;

	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\0"), &used, &f->p), MH_CODEC_EZERO);
	mh_frame_reader_free(&f->r);
	assert_int_equal(f->r.max_payload, MH_PAYLOAD_DEFAULT_MAX);
	assert_true(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\1a"), &used, &f->p), 1);
	assert_int_equal(f->p.code, 'a');
}

/* ------------------------------------------------- split-stream decoding */

struct pkt_copy {
	uint8_t code;
	size_t len;
	uint8_t *data;
};

struct pkt_list {
	struct pkt_copy *v;
	size_t n, cap;
};

static void pkt_list_free(struct pkt_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].data);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void pkt_list_add(struct pkt_list *l, const struct mh_packet *p)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	l->v[l->n].code = p->code;
	l->v[l->n].len = p->len;
	l->v[l->n].data = malloc(p->len + 1);
	assert_non_null(l->v[l->n].data);
	memcpy(l->v[l->n].data, p->data, p->len + 1); /* NUL included */
	l->n++;
}

/* Feed one chunk completely, collecting every frame it finishes. */
static void feed_chunk(struct mh_frame_reader *r, const uint8_t *data, size_t n,
                       struct pkt_list *out)
{
	struct mh_packet p;
	size_t used;
	int rc;

	while (n > 0) {
		rc = mh_frame_feed(r, data, n, &used, &p);
		assert_true(rc == 0 || rc == 1);
		assert_true(used <= n);
		if (rc == 1)
			pkt_list_add(out, &p);
		else
			assert_int_equal(used, n);
		data += used;
		n -= used;
	}
}

static void assert_same_packets(const struct pkt_list *a, const struct pkt_list *b)
{
	size_t i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		assert_int_equal(a->v[i].code, b->v[i].code);
		assert_int_equal(a->v[i].len, b->v[i].len);
		assert_memory_equal(a->v[i].data, b->v[i].data, a->v[i].len + 1);
	}
}

/* A Postfix-like session (commands) followed by a milter's replies. */
#define SESSION_COMMANDS 17
#define SESSION_PACKETS 27

static void build_session(struct mh_buf *b)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg reply = {6, MH_ACT_ADDHDRS | MH_ACT_SETSYMLIST, MH_PROTO_NR_HDR, {NULL}};
	const char *cmacros[] = {"j", "mx.example.org", "{daemon_name}", "mx.example.org",
	                         "v", "Postfix 3.7.11"};
	const char *mail[] = {"<sender@example.net>", "SIZE=1234", "BODY=8BITMIME"};
	const char *rcpt[] = {"<rcpt@example.org>"};
	const char *imacro[] = {"i", "4XyZ1"};
	const char *add[] = {"<new@example.org>", "NOTIFY=NEVER"};
	char body[300];
	size_t i;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (char)(i % 7 == 0 ? '\n' : 'a' + i % 26);
	reply.macros[MH_STAGE_RCPT] = "{rcpt_addr} {rcpt_host}";

	mh_codec_put_optneg(b, &offer);
	mh_codec_put_macro(b, 'C', cmacros, 3);
	mh_codec_put_connect(b, "mx.example.net", '4', 54321, "192.0.2.1");
	mh_codec_put_macro(b, 'H', NULL, 0);
	mh_codec_put_str(b, MH_CMD_HELO, "mx.example.net");
	mh_codec_put_strs(b, MH_CMD_MAIL, mail, 3);
	mh_codec_put_strs(b, MH_CMD_RCPT, rcpt, 1);
	mh_codec_put_macro(b, 'T', imacro, 1);
	mh_codec_put_empty(b, MH_CMD_DATA);
	mh_codec_put_header(b, MH_CMD_HEADER, "From", "sender@example.net");
	mh_codec_put_header(b, MH_CMD_HEADER, "Subject", "folded\n\tline");
	mh_codec_put_empty(b, MH_CMD_EOH);
	mh_codec_put_raw(b, MH_CMD_BODY, body, sizeof(body));
	mh_codec_put_empty(b, MH_CMD_EOB);
	mh_codec_put_str(b, MH_CMD_UNKNOWN, "XFOO bar");
	mh_codec_put_empty(b, MH_CMD_ABORT);
	mh_codec_put_empty(b, MH_CMD_QUIT);

	mh_codec_put_optneg(b, &reply);
	mh_codec_put_empty(b, MH_REP_CONTINUE);
	mh_codec_put_empty(b, MH_REP_PROGRESS);
	mh_codec_put_header(b, MH_REP_ADDHEADER, "X-Spam", "no");
	mh_codec_put_index_header(b, MH_REP_INSHEADER, 0, "X-Top", "1");
	mh_codec_put_index_header(b, MH_REP_CHGHEADER, 2, "Subject", "");
	mh_codec_put_strs(b, MH_REP_ADDRCPT_PAR, add, 2);
	mh_codec_put_raw(b, MH_REP_REPLBODY, "new\r\n", 5);
	mh_codec_put_str(b, MH_REP_QUARANTINE, "held");
	assert_int_equal(mh_codec_put_replycode(b, "550-5.7.1 first\r\n550 5.7.1 last"),
	                 MH_CODEC_OK);
}

static void stream_split_anywhere_decodes_identically(void **state)
{
	struct fx *f = *state;
	struct pkt_list whole = {0}, got = {0};
	struct mh_frame_reader r;
	const uint8_t *s;
	size_t len, i, k;

	build_session(&f->b);
	s = mh_buf_head(&f->b);
	len = mh_buf_size(&f->b);

	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	feed_chunk(&r, s, len, &whole);
	assert_int_equal(whole.n, SESSION_PACKETS);
	assert_true(mh_frame_reader_idle(&r));
	for (i = 0; i < whole.n; i++) {
		struct mh_packet p = {whole.v[i].code, whole.v[i].data, whole.v[i].len};
		struct mh_cmd cmd;
		struct mh_reply rep;

		/* commands first, then replies: all well formed */
		if (i < SESSION_COMMANDS)
			assert_int_equal(mh_codec_decode_cmd(&p, &cmd), MH_CODEC_OK);
		else
			assert_int_equal(mh_codec_decode_reply(&p, &rep), MH_CODEC_OK);
	}
	mh_frame_reader_free(&r);

	/* One byte at a time. */
	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	for (i = 0; i < len; i++)
		feed_chunk(&r, s + i, 1, &got);
	assert_same_packets(&whole, &got);
	assert_true(mh_frame_reader_idle(&r));
	mh_frame_reader_free(&r);
	pkt_list_free(&got);

	/* Every split point of a two-chunk feed, one reader reused. */
	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	for (k = 0; k <= len; k++) {
		feed_chunk(&r, s, k, &got);
		feed_chunk(&r, s + k, len - k, &got);
		assert_same_packets(&whole, &got);
		assert_true(mh_frame_reader_idle(&r));
		pkt_list_free(&got);
	}
	mh_frame_reader_free(&r);
	pkt_list_free(&whole);
}

static void stream_with_full_size_body_chunks(void **state)
{
	struct fx *f = *state;
	struct pkt_list whole = {0}, got = {0};
	struct mh_frame_reader r;
	uint8_t *body = malloc(MH_CHUNK_MAX);
	size_t len, k, i;
	const size_t cuts[] = {1, 4, 5, 6, 4096, MH_CHUNK_MAX, MH_CHUNK_MAX + 5, MH_CHUNK_MAX + 9};

	assert_non_null(body);
	for (i = 0; i < MH_CHUNK_MAX; i++)
		body[i] = (uint8_t)(i * 31);
	mh_codec_put_raw(&f->b, MH_CMD_BODY, body, MH_CHUNK_MAX);
	mh_codec_put_raw(&f->b, MH_CMD_BODY, body, MH_CHUNK_MAX);
	mh_codec_put_empty(&f->b, MH_CMD_EOB);
	len = mh_buf_size(&f->b);

	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	feed_chunk(&r, mh_buf_head(&f->b), len, &whole);
	assert_int_equal(whole.n, 3);
	assert_int_equal(whole.v[0].len, MH_CHUNK_MAX);
	assert_memory_equal(whole.v[1].data, body, MH_CHUNK_MAX);
	assert_int_equal(r.buf_cap, MH_CHUNK_MAX + 1);
	for (k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		feed_chunk(&r, mh_buf_head(&f->b), cuts[k], &got);
		feed_chunk(&r, mh_buf_head(&f->b) + cuts[k], len - cuts[k], &got);
		assert_same_packets(&whole, &got);
		pkt_list_free(&got);
	}
	mh_frame_reader_free(&r);
	pkt_list_free(&whole);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST(smallest_frame_is_a_continue),
	    FX_TEST(frame_length_zero_is_ezero_and_sticky),
	    FX_TEST(frame_above_max_payload_is_etoobig_before_allocating),
	    FX_TEST(reader_buffer_grows_to_the_largest_frame),
	    FX_TEST(reader_appends_nul_after_payload),
	    FX_TEST(reader_stops_after_each_frame_and_reports_idle),
	    FX_TEST(reader_free_allows_reuse),
	    FX_TEST(stream_split_anywhere_decodes_identically),
	    FX_TEST(stream_with_full_size_body_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
