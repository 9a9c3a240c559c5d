/*
 * cond_testutil - see cond_testutil.h.
 */
#include "cond_testutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const struct mh_cond_opts *fill(struct ct_opts *b, const char *file, va_list ap)
{
	const char *key;
	size_t n = 0;

	memset(b, 0, sizeof(*b));
	while ((key = va_arg(ap, const char *)) != NULL && n < CT_MAX_OPTS) {
		const char *v;
		size_t nv = 0;

		b->opt[n].key = key;
		b->opt[n].line = va_arg(ap, int);
		while ((v = va_arg(ap, const char *)) != NULL && nv < CT_MAX_VALUES)
			b->values[n][nv++] = v;
		b->opt[n].values = b->values[n];
		b->opt[n].nvalues = nv;
		n++;
	}
	b->o.file = file;
	b->o.opts = b->opt;
	b->o.nopts = n;
	return &b->o;
}

const struct mh_cond_opts *ct_opts(struct ct_opts *b, ...)
{
	const struct mh_cond_opts *o;
	va_list ap;

	va_start(ap, b);
	o = fill(b, "test.lua", ap);
	va_end(ap);
	return o;
}

const struct mh_cond_opts *ct_opts_file(struct ct_opts *b, const char *file, ...)
{
	const struct mh_cond_opts *o;
	va_list ap;

	va_start(ap, file);
	o = fill(b, file, ap);
	va_end(ap);
	return o;
}

static const char *fake_macro(const struct mh_cond_ctx *ctx, const char *name)
{
	const struct ct_ctx *c = ctx->hub_arg;
	size_t i;

	for (i = 0; i < c->nmacros; i++)
		if (strcmp(c->macro_name[i], name) == 0)
			return c->macro_value[i];
	return NULL;
}

static void fake_set_macro(const struct mh_cond_ctx *ctx, const char *name, const char *value)
{
	struct ct_ctx *c = ctx->hub_arg;

	if (c->nset < CT_MAX_MACROS) {
		c->set_name[c->nset] = name;
		c->set_value[c->nset] = value;
		c->nset++;
	}
}

void ct_ctx_init(struct ct_ctx *c, enum mh_cond_stage st)
{
	memset(c, 0, sizeof(*c));
	c->ctx.stage = st;
	c->ctx.client_name = "[192.0.2.1]";
	c->ctx.client_addr = "192.0.2.1";
	c->ctx.client_family = AF_INET;
	c->ctx.concurrent_sessions = 1;
	c->ctx.macro = fake_macro;
	c->ctx.set_macro = fake_set_macro;
	c->ctx.hub_arg = c;
}

void ct_ctx_macro(struct ct_ctx *c, const char *name, const char *value)
{
	if (c->nmacros < CT_MAX_MACROS) {
		c->macro_name[c->nmacros] = name;
		c->macro_value[c->nmacros] = value;
		c->nmacros++;
	}
}

void ct_free(struct mh_cond *c)
{
	if (c == NULL)
		return;
	if (c->ops != NULL && c->ops->free != NULL)
		c->ops->free(c);
	free(c->name);
	free(c);
}
