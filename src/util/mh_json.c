/*
 * mh_json - a small streaming JSON writer into an mh_buf.
 *
 * SUMMARY
 *	Calls mirror the JSON grammar: obj_begin/obj_end, arr_begin/arr_end,
 *	key (inside an object, before each value), and the scalar writers.
 *	The writer inserts commas itself; nothing is ever buffered inside
 *	the writer, so the output is complete after the last *_end.
 *
 * CONTRACT
 *	Output is always valid JSON when the calls are well nested: strings
 *	escape '"' and '\\' as \" and \\, LF CR TAB as \n \r \t, every other
 *	byte below 0x20 as \u00XX, and every byte that does not start or
 *	continue a well-formed UTF-8 sequence (overlong forms, surrogates and
 *	code points above U+10FFFF included) as \u00XX. Valid UTF-8 passes
 *	through unchanged.
 *	Doubles use the shortest of %.15g/%.16g/%.17g that reads back to the
 *	same value; NaN and infinities are written as null.
 *	Top-level values are not separated by commas (one document each).
 *
 * DIAGNOSTICS
 *	Nesting deeper than MH_JSON_DEPTH_MAX or an *_end without a begin is
 *	a programming error: assert.
 */
#include "util/mh_json.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mh_json_init(struct mh_json *j, struct mh_buf *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

/* Separator before a value or a key. */
static void sep(struct mh_json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth > 0 && j->need_comma[j->depth])
		mh_buf_append_byte(j->out, ',');
	j->need_comma[j->depth] = 1;
}

static void open_level(struct mh_json *j, char c)
{
	sep(j);
	assert(j->depth + 1 < MH_JSON_DEPTH_MAX);
	mh_buf_append_byte(j->out, (uint8_t)c);
	j->depth++;
	j->need_comma[j->depth] = 0;
}

static void close_level(struct mh_json *j, char c)
{
	assert(j->depth > 0 && !j->after_key);
	j->depth--;
	mh_buf_append_byte(j->out, (uint8_t)c);
}

void mh_json_obj_begin(struct mh_json *j)
{
	open_level(j, '{');
}

void mh_json_obj_end(struct mh_json *j)
{
	close_level(j, '}');
}

void mh_json_arr_begin(struct mh_json *j)
{
	open_level(j, '[');
}

void mh_json_arr_end(struct mh_json *j)
{
	close_level(j, ']');
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t len;
	uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

static void put_string(struct mh_buf *b, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	mh_buf_append_byte(b, '"');
	size_t run = 0; /* start of bytes that need no escaping */
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = utf8_len(s + i, n - i);
			if (l > 0) {
				i += l;
				continue;
			}
		}
		mh_buf_append(b, s + run, i - run);
		char e[6];
		size_t en = 2;
		e[0] = '\\';
		switch (c) {
		case '"':
			e[1] = '"';
			break;
		case '\\':
			e[1] = '\\';
			break;
		case '\n':
			e[1] = 'n';
			break;
		case '\r':
			e[1] = 'r';
			break;
		case '\t':
			e[1] = 't';
			break;
		default:
			e[1] = 'u';
			e[2] = '0';
			e[3] = '0';
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			en = 6;
		}
		mh_buf_append(b, e, en);
		run = ++i;
	}
	mh_buf_append(b, s + run, n - run);
	mh_buf_append_byte(b, '"');
}

void mh_json_key(struct mh_json *j, const char *key)
{
	assert(!j->after_key && j->depth > 0);
	sep(j);
	put_string(j->out, (const uint8_t *)key, strlen(key));
	mh_buf_append_byte(j->out, ':');
	j->after_key = 1;
}

void mh_json_str(struct mh_json *j, const char *s)
{
	if (s == NULL) {
		mh_json_null(j);
		return;
	}
	mh_json_strn(j, s, strlen(s));
}

void mh_json_strn(struct mh_json *j, const char *s, size_t n)
{
	sep(j);
	put_string(j->out, (const uint8_t *)s, n);
}

void mh_json_int(struct mh_json *j, int64_t v)
{
	sep(j);
	mh_buf_printf(j->out, "%" PRId64, v);
}

void mh_json_double(struct mh_json *j, double v)
{
	if (!isfinite(v)) {
		mh_json_null(j);
		return;
	}
	sep(j);
	char tmp[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* A decimal comma from a non-C LC_NUMERIC would break JSON. */
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.';
	mh_buf_append_str(j->out, tmp);
}

void mh_json_bool(struct mh_json *j, int v)
{
	sep(j);
	mh_buf_append_str(j->out, v ? "true" : "false");
}

void mh_json_null(struct mh_json *j)
{
	sep(j);
	mh_buf_append_str(j->out, "null");
}
