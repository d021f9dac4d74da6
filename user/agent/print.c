// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * What every object's printers share (main.h): the choice between an object's plain printer
 * and its JSON twin, errors in either form, and the formats of a split and its shadows.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"

/* Writes a JSON value on stdout (compact, newline-terminated) and frees it. */
static int json_print(json_t *value)
{
	int err;

	if (!value) {
		fputs("sockway: out of memory\n", stderr);
		return -ENOMEM;
	}
	err = json_dumpf(value, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
	fputc('\n', stdout);
	json_decref(value);
	return err ? -EIO : 0;
}

int agent_print(const struct printer *printer, const void *data)
{
	if (agent_cfg.json)
		return json_print(printer->json(data));
	printer->plain(data);
	return 0;
}

/*
 * A message as a JSON string. Messages quote operator input escaped, but a usage error may
 * echo an argument as it came: bytes that are not UTF-8 become \xNN rather than lose it all.
 */
static json_t *json_message(const char *msg)
{
	json_t *s = json_string(msg);
	size_t i, n = 0;
	char *safe;

	if (s)
		return s;
	safe = malloc(4 * strlen(msg) + 1);
	if (!safe)
		return NULL;
	for (i = 0; msg[i]; i++) {
		unsigned char c = msg[i];

		n += sprintf(safe + n, c < 0x80 ? "%c" : "\\x%02x", c);
	}
	s = json_string(safe);
	free(safe);
	return s;
}

/*
 * Errors go where bpftool puts them: plain, one line on stderr; under -j, {"error": "..."}
 * on stdout, where a script reads the output, so that it always gets JSON.
 */
static void error_print(const char *fmt, va_list ap)
{
	char *msg;

	if (vasprintf(&msg, fmt, ap) < 0) {
		fputs("sockway: out of memory\n", stderr);
		return;
	}
	if (agent_cfg.json)
		json_print(json_pack("{s:o}", "error", json_message(msg)));
	else
		fprintf(stderr, "sockway: %s\n", msg);
	free(msg);
}

int agent_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_print(fmt, ap);
	va_end(ap);
	return err;
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_print(fmt, ap);
	va_end(ap);
	return -EUSAGE;
}

int agent_fail(const struct sw_err *e, int err)
{
	return agent_error(err, "%s", e->msg[0] ? e->msg : strerror(-err));
}

/* "name=fraction" for each of nr entries of size bytes whose name is first, then fraction. */
static char *format_pairs(const void *base, size_t size, size_t offset, __u32 nr, char *buf,
			  size_t len)
{
	const char *entry = base;
	size_t off = 0;
	char num[32];
	__u32 i, v;

	buf[0] = '\0';
	for (i = 0; i < nr && off < len; i++, entry += size) {
		memcpy(&v, entry + offset, sizeof(v));
		off += snprintf(buf + off, len - off, "%s%s=%s", i ? " " : "", entry,
				sw_format_fraction(v, num, sizeof(num)));
	}
	return buf;
}

char *format_weights(const struct sw_policy_endpoint *ep, char *buf, size_t len)
{
	return format_pairs(ep->weights, sizeof(ep->weights[0]),
			    offsetof(struct sw_policy_weight, weight), ep->nr_weights, buf, len);
}

char *format_shadows(const struct sw_policy_endpoint *ep, char *buf, size_t len)
{
	if (!ep->nr_shadows)
		return strcpy(buf, "-");
	return format_pairs(ep->shadows, sizeof(ep->shadows[0]),
			    offsetof(struct sw_policy_shadow, fraction), ep->nr_shadows, buf, len);
}

json_t *json_fraction(__u32 v)
{
	return json_real(v / (double)SW_WEIGHT_ONE);
}

/* {"backend": fraction, ...} */
static json_t *json_pairs(const void *base, size_t size, size_t offset, __u32 nr)
{
	const char *entry = base;
	json_t *out = json_object();
	__u32 i, v;

	for (i = 0; i < nr; i++, entry += size) {
		memcpy(&v, entry + offset, sizeof(v));
		json_object_set_new(out, entry, json_fraction(v));
	}
	return out;
}

json_t *json_weights(const struct sw_policy_endpoint *ep)
{
	return json_pairs(ep->weights, sizeof(ep->weights[0]),
			  offsetof(struct sw_policy_weight, weight), ep->nr_weights);
}

json_t *json_shadows(const struct sw_policy_endpoint *ep)
{
	return json_pairs(ep->shadows, sizeof(ep->shadows[0]),
			  offsetof(struct sw_policy_shadow, fraction), ep->nr_shadows);
}
