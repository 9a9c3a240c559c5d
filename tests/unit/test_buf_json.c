/*
 * test_buf_json - mh_buf (growth, consume, printf, back-patching) and
 * mh_json (escaping, nesting, numbers): exact output strings.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/mh_buf.h"
#include "util/mh_json.h"

static void buf_grows_and_stays_nul_terminated(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	assert_null(b.data);
	assert_int_equal(mh_buf_size(&b), 0);
	for (int i = 0; i < 10000; i++) {
		mh_buf_append_byte(&b, (uint8_t)('a' + i % 26));
		assert_int_equal(b.data[b.len], 0);
	}
	assert_int_equal(mh_buf_size(&b), 10000);
	assert_true(b.cap > 10000 && b.cap <= 2 * 10001 + 64);
	assert_int_equal(b.data[25], 'z');
	mh_buf_append(&b, "", 0);
	assert_int_equal(mh_buf_size(&b), 10000);
	mh_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void buf_reserve_returns_end(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_buf_append_str(&b, "abc");
	uint8_t *end = mh_buf_reserve(&b, 1000);
	assert_ptr_equal(end, b.data + 3);
	assert_true(b.cap >= 1004);
	memcpy(end, "defg", 4);
	assert_int_equal(mh_buf_size(&b), 3); /* reserve does not commit */
	mh_buf_free(&b);
}

static void buf_strings_and_integers(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_buf_append_str(&b, "ab");
	mh_buf_append_strz(&b, "cd");
	mh_buf_append_u16be(&b, 0x1234);
	mh_buf_append_u32be(&b, 0xdeadbeef);
	static const uint8_t want[] = {'a', 'b', 'c', 'd', 0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef};
	assert_int_equal(mh_buf_size(&b), sizeof(want));
	assert_memory_equal(mh_buf_head(&b), want, sizeof(want));
	mh_buf_free(&b);
}

static void buf_printf_small_and_large(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_buf_printf(&b, "%d-%s", 42, "x");
	assert_string_equal((const char *)mh_buf_head(&b), "42-x");
	char big[3000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	mh_buf_printf(&b, "[%s]", big);
	assert_int_equal(mh_buf_size(&b), 4 + 2 + 2999);
	assert_int_equal(b.data[5], 'q');
	assert_int_equal(b.data[b.len - 1], ']');
	assert_int_equal(b.data[b.len], 0);
	mh_buf_printf(&b, "%s", "");
	assert_int_equal(mh_buf_size(&b), 4 + 2 + 2999);
	mh_buf_free(&b);
}

/* A frame length placeholder patched after the payload is appended. */
static void buf_u32_back_patching(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_buf_append_str(&b, "xx");
	mh_buf_consume(&b, 1); /* positions are absolute, off does not matter */
	size_t pos = b.len;
	mh_buf_append_u32be(&b, 0);
	for (int i = 0; i < 500; i++) /* growth moves data, not positions */
		mh_buf_append_byte(&b, 'p');
	mh_buf_put_u32be_at(&b, pos, 0x01020304);
	assert_int_equal(b.data[pos], 1);
	assert_int_equal(b.data[pos + 1], 2);
	assert_int_equal(b.data[pos + 2], 3);
	assert_int_equal(b.data[pos + 3], 4);
	assert_int_equal(b.data[pos + 4], 'p');
	assert_int_equal(mh_buf_size(&b), 1 + 4 + 500);
	mh_buf_free(&b);
}

static void buf_consume_reclaims_lazily(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_buf_append_str(&b, "0123456789");
	mh_buf_consume(&b, 3);
	assert_int_equal(b.off, 3); /* less than half: no move */
	assert_string_equal((const char *)mh_buf_head(&b), "3456789");
	mh_buf_consume(&b, 3);
	assert_int_equal(b.off, 0); /* past half: compacted */
	assert_int_equal(b.len, 4);
	assert_string_equal((const char *)mh_buf_head(&b), "6789");
	size_t cap = b.cap;
	mh_buf_consume(&b, 4);
	assert_int_equal(b.off, 0); /* all consumed: reset, storage kept */
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, cap);
	assert_string_equal((const char *)b.data, "");
	mh_buf_append_str(&b, "new");
	mh_buf_reset(&b);
	assert_int_equal(mh_buf_size(&b), 0);
	mh_buf_free(&b);
}

static void xalloc_wrappers(void **state)
{
	char *s = mh_xstrdup("hello");
	assert_string_equal(s, "hello");
	char *t = mh_xstrndup("hello", 3);
	assert_string_equal(t, "hel");
	char *u = mh_xstrndup("hi", 10);
	assert_string_equal(u, "hi");
	int *z = mh_xcalloc(4, sizeof(int));
	assert_int_equal(z[0] | z[1] | z[2] | z[3], 0);
	z = mh_xrealloc(z, 100 * sizeof(int));
	void *m = mh_xmalloc(0);
	assert_non_null(m);
	free(m);
	free(z);
	free(u);
	free(t);
	free(s);
}

/* ---- json ---- */

#define JSON_EXPECT(buf, text)                                                                     \
	do {                                                                                       \
		assert_string_equal((const char *)mh_buf_head(buf), text);                         \
		mh_buf_reset(buf);                                                                 \
	} while (0)

static void json_nesting_and_commas(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	struct mh_json j;
	mh_json_init(&j, &b);
	mh_json_obj_begin(&j);
	mh_json_key(&j, "a");
	mh_json_int(&j, 1);
	mh_json_key(&j, "list");
	mh_json_arr_begin(&j);
	mh_json_int(&j, -2);
	mh_json_bool(&j, 1);
	mh_json_bool(&j, 0);
	mh_json_null(&j);
	mh_json_str(&j, NULL);
	mh_json_arr_begin(&j);
	mh_json_arr_end(&j);
	mh_json_obj_begin(&j);
	mh_json_obj_end(&j);
	mh_json_obj_begin(&j);
	mh_json_key(&j, "k");
	mh_json_str(&j, "v");
	mh_json_obj_end(&j);
	mh_json_arr_end(&j);
	mh_json_key(&j, "big");
	mh_json_int(&j, INT64_MIN);
	mh_json_obj_end(&j);
	assert_int_equal(j.depth, 0);
	JSON_EXPECT(&b, "{\"a\":1,\"list\":[-2,true,false,null,null,[],{},{\"k\":\"v\"}],"
	                "\"big\":-9223372036854775808}");
	mh_buf_free(&b);
}

static void json_escapes_control_and_quotes(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	struct mh_json j;
	mh_json_init(&j, &b);
	mh_json_str(&j, "q\"b\\s/n\nr\rt\tbell\a\x1f\x7f");
	JSON_EXPECT(&b, "\"q\\\"b\\\\s/n\\nr\\rt\\tbell\\u0007\\u001f\x7f\"");
	mh_json_strn(&j, "a\0b", 3);
	JSON_EXPECT(&b, "\"a\\u0000b\"");
	mh_json_obj_begin(&j);
	mh_json_key(&j, "ke\"y\n");
	mh_json_str(&j, "");
	mh_json_obj_end(&j);
	JSON_EXPECT(&b, "{\"ke\\\"y\\n\":\"\"}");
	mh_buf_free(&b);
}

static void json_utf8_valid_passes_invalid_escaped(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	struct mh_json j;
	mh_json_init(&j, &b);
	/* é, €, U+1F600: unchanged */
	mh_json_str(&j, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	JSON_EXPECT(&b, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	/* Latin-1 byte, lone continuation, truncated sequence at the end */
	mh_json_str(&j, "caf\xe9!\x80x\xe2\x82");
	JSON_EXPECT(&b, "\"caf\\u00e9!\\u0080x\\u00e2\\u0082\"");
	/* overlong '/', surrogate U+D800, above U+10FFFF, 0xff */
	mh_json_str(&j, "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xff");
	JSON_EXPECT(&b, "\"\\u00c0\\u00af|\\u00ed\\u00a0\\u0080|\\u00f4\\u0090\\u0080\\u0080|"
	                "\\u00ff\"");
	mh_buf_free(&b);
}

static void json_doubles(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	struct mh_json j;
	mh_json_init(&j, &b);
	mh_json_arr_begin(&j);
	mh_json_double(&j, 0.1);
	mh_json_double(&j, 1.0);
	mh_json_double(&j, -2.5);
	mh_json_double(&j, 1e300);
	mh_json_double(&j, 0.30000000000000004);
	mh_json_double(&j, NAN);
	mh_json_double(&j, INFINITY);
	mh_json_double(&j, -INFINITY);
	mh_json_arr_end(&j);
	JSON_EXPECT(&b, "[0.1,1,-2.5,1e+300,0.30000000000000004,null,null,null]");
	mh_buf_free(&b);
}

static void json_top_level_values_are_separate(void **state)
{
	struct mh_buf b = MH_BUF_INIT;
	struct mh_json j;
	mh_json_init(&j, &b);
	mh_json_obj_begin(&j);
	mh_json_obj_end(&j);
	mh_json_obj_begin(&j);
	mh_json_key(&j, "n");
	mh_json_int(&j, 2);
	mh_json_obj_end(&j);
	JSON_EXPECT(&b, "{}{\"n\":2}");
	mh_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(buf_grows_and_stays_nul_terminated),
	    cmocka_unit_test(buf_reserve_returns_end),
	    cmocka_unit_test(buf_strings_and_integers),
	    cmocka_unit_test(buf_printf_small_and_large),
	    cmocka_unit_test(buf_u32_back_patching),
	    cmocka_unit_test(buf_consume_reclaims_lazily),
	    cmocka_unit_test(xalloc_wrappers),
	    cmocka_unit_test(json_nesting_and_commas),
	    cmocka_unit_test(json_escapes_control_and_quotes),
	    cmocka_unit_test(json_utf8_valid_passes_invalid_escaped),
	    cmocka_unit_test(json_doubles),
	    cmocka_unit_test(json_top_level_values_are_separate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
