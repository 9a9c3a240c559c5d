/*
 * codec_testutil - the fixture and helpers the codec tests share
 * (test_codec_frames, test_codec_roundtrip, test_codec_malformed,
 * test_optneg): a buffer, a frame reader, and the decoded packet,
 * command and reply; framing one encoded frame and decoding it.
 * Include after <setjmp.h>, <stdarg.h>, <stddef.h> and <cmocka.h>.
 */
#ifndef CODEC_TESTUTIL_H
#define CODEC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

/* A string literal with embedded NULs: its bytes and their count. */
#define RAW(s) (const uint8_t *)(s), (sizeof(s) - 1)

struct fx {
	struct mh_buf b;
	struct mh_frame_reader r;
	struct mh_packet p;
	struct mh_cmd cmd;
	struct mh_reply rep;
};

int fx_setup(void **state);
int fx_teardown(void **state);

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

/* Frame the bytes in f->b (exactly one frame) into f->p, then empty f->b. */
void frame_one(struct fx *f);
/* Frame f->b and decode it as a command / reply. */
int cmd_of(struct fx *f);
int reply_of(struct fx *f);
/* Decode a hand-made packet (any payload bytes) as a command / reply. */
int raw_cmd(struct fx *f, uint8_t code, const uint8_t *payload, size_t len);
int raw_reply(struct fx *f, uint8_t code, const uint8_t *payload, size_t len);
void assert_bytes(const struct mh_buf *b, const uint8_t *want, size_t len);

#endif
