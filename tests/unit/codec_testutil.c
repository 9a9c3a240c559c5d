/*
 * codec_testutil - see codec_testutil.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "codec_testutil.h"

int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	mh_frame_reader_init(&f->r, MH_PAYLOAD_DEFAULT_MAX);
	*state = f;
	return 0;
}

int fx_teardown(void **state)
{
	struct fx *f = *state;

	mh_buf_free(&f->b);
	mh_frame_reader_free(&f->r);
	free(f);
	return 0;
}

/* Frame the bytes in f->b (exactly one frame) into f->p, then empty f->b. */
void frame_one(struct fx *f)
{
	size_t used = 0;

	assert_int_equal(mh_frame_feed(&f->r, mh_buf_head(&f->b), mh_buf_size(&f->b), &used, &f->p),
	                 1);
	assert_int_equal(used, mh_buf_size(&f->b));
	assert_true(mh_frame_reader_idle(&f->r));
	mh_buf_reset(&f->b);
}

int cmd_of(struct fx *f)
{
	frame_one(f);
	return mh_codec_decode_cmd(&f->p, &f->cmd);
}

int reply_of(struct fx *f)
{
	frame_one(f);
	return mh_codec_decode_reply(&f->p, &f->rep);
}

/* Decode a hand-made packet (any payload bytes) as a command / reply. */
int raw_cmd(struct fx *f, uint8_t code, const uint8_t *payload, size_t len)
{
	mh_codec_put_raw(&f->b, code, payload, len);
	return cmd_of(f);
}

int raw_reply(struct fx *f, uint8_t code, const uint8_t *payload, size_t len)
{
	mh_codec_put_raw(&f->b, code, payload, len);
	return reply_of(f);
}

void assert_bytes(const struct mh_buf *b, const uint8_t *want, size_t len)
{
	assert_int_equal(mh_buf_size(b), len);
	assert_memory_equal(mh_buf_head(b), want, len);
}
