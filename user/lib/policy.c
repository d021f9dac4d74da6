// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy model (policy.h): parsers of operator input, edits that keep every list sorted
 * and leave the policy untouched when they refuse, and the whole-policy check that apply runs.
 *
 * Every check runs before the first byte of the policy changes, so a refusal never needs an
 * undo. The lists are small (256 entries at most), so lookups are linear scans: they also
 * work on a policy that is not sorted yet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "policy.h"
#include "sockway/norm.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Room for a quoted name or value in a message; longer input is cut with "...". */
#define SHOWN_MAX 72

/* Methods in SW_METHOD_* bit order: bit i is method_names[i]. */
static const char *const method_names[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
};
_Static_assert(SW_METHOD_GET == 1U << 0 && SW_METHOD_TRACE == 1U << 8,
	       "method_names[] follows the SW_METHOD_* bits");

/* The bits an operator can put in a route filter; SW_METHOD_OTHER is only a request's. */
#define METHODS_KNOWN ((1U << ARRAY_SIZE(method_names)) - 1)

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
	return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-';
}

/* RFC 9110 section 5.6.2: tchar. */
static bool is_token_char(char c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

char *sw_format_quoted(const char *s, char *buf, size_t len)
{
	size_t n = 0, cut = 0;
	char piece[8];
	int w;

	if (len < 4) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			w = snprintf(piece, sizeof(piece), "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			w = snprintf(piece, sizeof(piece), "\\x%02x", c);
		else
			w = snprintf(piece, sizeof(piece), "%c", c);
		if (n + w >= len) {
			/* Back up to the last whole piece that leaves room for "...". */
			strcpy(buf + cut, "...");
			return buf;
		}
		memcpy(buf + n, piece, w);
		n += w;
		if (n + 4 <= len)
			cut = n;
	}
	buf[n] = '\0';
	return buf;
}

/* One character for a message: 'x' when printable, else its byte value. */
static const char *show_char(char c, char buf[16])
{
	unsigned char u = c;

	if (u > 0x20 && u < 0x7f)
		snprintf(buf, 16, "'%c'", u);
	else if (u == ' ')
		snprintf(buf, 16, "a space");
	else
		snprintf(buf, 16, "byte 0x%02x", u);
	return buf;
}

/* Fixed point to the shortest decimal: nine decimals are exact, trailing zeros add nothing. */
static char *format_fixed(__u64 v, char *buf, size_t len)
{
	char tmp[32];
	int n;

	n = snprintf(tmp, sizeof(tmp), "%llu.%09llu", (unsigned long long)(v / SW_WEIGHT_ONE),
		     (unsigned long long)(v % SW_WEIGHT_ONE));
	while (tmp[n - 1] == '0')
		n--;
	if (tmp[n - 1] == '.')
		n--;
	tmp[n] = '\0';
	snprintf(buf, len, "%s", tmp);
	return buf;
}

char *sw_format_fraction(__u32 v, char *buf, size_t len)
{
	return format_fixed(v, buf, len);
}

int sw_parse_name(const char *s, const char *what, struct sw_err *e)
{
	char shown[SHOWN_MAX], c[16];
	size_t len = strlen(s), i;

	if (!what)
		what = "name";
	sw_format_quoted(s, shown, sizeof(shown));
	if (!len)
		return sw_errorf(e, -EINVAL,
				 "%s is empty; use 1 to %d letters, digits, '.', '_' or '-'", what,
				 SW_NAME_MAX - 1);
	for (i = 0; i < len; i++) {
		if (!is_name_char(s[i]))
			return sw_errorf(
				e, -EINVAL,
				"%s \"%s\" contains %s; use only letters, digits, '.', '_' "
				"and '-'",
				what, shown, show_char(s[i], c));
	}
	if (len > SW_NAME_MAX - 1)
		return sw_errorf(e, -EINVAL, "%s \"%s\" is %zu characters long; shorten it to %d",
				 what, shown, len, SW_NAME_MAX - 1);
	return 0;
}

/* Decimal 1..65535, digits only: strtoul would also take signs, blanks and "0x". */
static int parse_port(const char *s, __u16 *port)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; is_digit(s[i]); i++) {
		if (i >= 5)
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (!i || s[i] || !v || v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

int sw_parse_addr(const char *s, struct sw_addr *a, struct sw_err *e)
{
	struct sw_addr out = {0};
	char shown[SHOWN_MAX], host[INET6_ADDRSTRLEN];
	const char *end, *port;
	size_t host_len;
	int family;

	sw_format_quoted(s, shown, sizeof(shown));
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end)
			return sw_errorf(e, -EINVAL,
					 "address \"%s\" has no closing ']'; write IPv6 as "
					 "[ADDR]:PORT, e.g. [::1]:8080",
					 shown);
		family = AF_INET6;
		s++;
		host_len = end - s;
		port = end + 1;
	} else {
		end = strrchr(s, ':');
		if (!end)
			return sw_errorf(e, -EINVAL,
					 "address \"%s\" has no port; write it as ADDR:PORT, e.g. "
					 "127.0.0.1:8080",
					 shown);
		/* A second ':' means an IPv6 address: without brackets its port is ambiguous. */
		if (memchr(s, ':', end - s))
			return sw_errorf(
				e, -EINVAL,
				"address \"%s\" looks like IPv6 without brackets; write it "
				"as [ADDR]:PORT, e.g. [::1]:8080",
				shown);
		family = AF_INET;
		host_len = end - s;
		port = end;
	}
	if (*port != ':')
		return sw_errorf(e, -EINVAL,
				 "address \"%s\" has no port after ']'; write it as [ADDR]:PORT, "
				 "e.g. [::1]:8080",
				 shown);
	if (!host_len || host_len >= sizeof(host))
		goto bad_host;
	memcpy(host, s, host_len);
	host[host_len] = '\0';
	/* inet_pton, not inet_aton: no "127.1", no octal "010.0.0.1", nothing but the address. */
	if (inet_pton(family, host, out.addr) != 1)
		goto bad_host;
	if (parse_port(port + 1, &out.port))
		return sw_errorf(
			e, -EINVAL,
			"address \"%s\" has a bad port; use a decimal port from 1 to 65535", shown);
	out.family = family;
	*a = out;
	return 0;

bad_host:
	return sw_errorf(e, -EINVAL,
			 "address \"%s\" is not a numeric %s address; write a.b.c.d:PORT or "
			 "[IPv6]:PORT (host names are not resolved)",
			 shown, family == AF_INET ? "IPv4" : "IPv6");
}

char *sw_format_addr(const struct sw_addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->family == AF_INET && inet_ntop(AF_INET, a->addr, host, sizeof(host)))
		snprintf(buf, len, "%s:%u", host, a->port);
	else if (a->family == AF_INET6 && inet_ntop(AF_INET6, a->addr, host, sizeof(host)))
		snprintf(buf, len, "[%s]:%u", host, a->port);
	else
		snprintf(buf, len, "(bad address family %u)", a->family);
	return buf;
}

/* text is what the operator wrote, for the message; NULL prints v itself. */
static int fraction_units(double v, const char *what, const char *text, __u32 *out,
			  struct sw_err *e)
{
	char shown[SHOWN_MAX];
	long long units;

	if (!what)
		what = "fraction";
	if (text)
		sw_format_quoted(text, shown, sizeof(shown));
	else
		snprintf(shown, sizeof(shown), "%.9g", v);
	/* Up to 1e-9 above 1 is float noise from sums like 0.1 + 0.9, not operator intent. */
	if (!isfinite(v) || v < 0 || v > 1 + 1e-9)
		return sw_errorf(e, -EINVAL,
				 "%s %s is out of range; use a number from 0 to 1, like 0.25", what,
				 shown);
	units = llround(v * SW_WEIGHT_ONE);
	if (units > SW_WEIGHT_ONE)
		units = SW_WEIGHT_ONE;
	/* Rounding a positive value down to 0 would silently turn it off. */
	if (v > 0 && !units)
		return sw_errorf(e, -EINVAL,
				 "%s %s is below the resolution of 1e-9; use 0 or at least "
				 "0.000000001",
				 what, shown);
	*out = units;
	return 0;
}

int sw_fraction_from_double(double v, const char *what, __u32 *out, struct sw_err *e)
{
	return fraction_units(v, what, NULL, out, e);
}

int sw_parse_fraction(const char *s, const char *what, __u32 *out, struct sw_err *e)
{
	char shown[SHOWN_MAX];
	const char *c;
	char *end;
	double v;

	/* strtod also reads "nan", "inf", hex and leading blanks: take plain decimals only. */
	for (c = s; *c; c++) {
		if (!is_digit(*c) && !strchr(".eE+-", *c))
			break;
	}
	errno = 0;
	v = strtod(s, &end);
	/* Beyond what a double holds either way: report it as out of range, not as 0 or inf. */
	if (errno == ERANGE)
		v = NAN;
	if (!*s || *c || *end) {
		sw_format_quoted(s, shown, sizeof(shown));
		return sw_errorf(e, -EINVAL,
				 "%s \"%s\" is not a decimal number; write one from 0 to 1, like "
				 "0.25",
				 what ? what : "fraction", shown);
	}
	return fraction_units(v, what, s, out, e);
}

static __u32 method_bit(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(method_names); i++) {
		if (strlen(method_names[i]) == len && !strncasecmp(name, method_names[i], len))
			return 1U << i;
	}
	return 0;
}

int sw_parse_methods(const char *csv, __u32 *mask, struct sw_err *e)
{
	char shown[SHOWN_MAX], word[SHOWN_MAX];
	const char *p = csv, *end;
	__u32 m = 0, bit;
	size_t len;

	sw_format_quoted(csv, shown, sizeof(shown));
	for (;;) {
		end = strchrnul(p, ',');
		/* Blanks around commas come from "GET, POST" on a shell line. */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		len = end - p;
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!len)
			return sw_errorf(e, -EINVAL,
					 "method list \"%s\" has an empty entry; list methods "
					 "separated by single commas, like GET,POST",
					 shown);
		bit = method_bit(p, len);
		if (!bit) {
			snprintf(word, sizeof(word), "%.*s", (int)(len < 32 ? len : 32), p);
			sw_format_quoted(word, shown, sizeof(shown));
			return sw_errorf(e, -EINVAL,
					 "unknown method \"%s\"; use GET, HEAD, POST, PUT, DELETE, "
					 "PATCH, OPTIONS, CONNECT or TRACE",
					 shown);
		}
		m |= bit;
		if (!*end)
			break;
		p = end + 1;
	}
	*mask = m;
	return 0;
}

char *sw_format_methods(__u32 mask, char *buf, size_t len)
{
	size_t i, n = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(method_names); i++) {
		if (!(mask & (1U << i)))
			continue;
		n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "",
			      method_names[i]);
		if (n >= len)
			break;
	}
	return buf;
}

/*
 * A route is matched against the normal form of request paths (include/sockway/norm.h), so
 * it must be in that form itself, or no request could ever match it.
 */
static int route_normal(const char *s, size_t len, const char *shown, char out[SW_PREFIX_MAX],
			struct sw_err *e)
{
	struct sw_path_norm pn;
	__u8 norm[SW_PREFIX_MAX];
	size_t i;
	int err = 0;

	sw_path_init(&pn, norm);
	for (i = 1; i < len && !err; i++)
		err = sw_path_feed(&pn, norm, (__u8)s[i]);
	if (!err)
		err = sw_path_end(&pn, norm);
	if (err)
		return sw_errorf(e, -EINVAL,
				 "route \"%s\" holds what requests may not carry (an escaped '/', "
				 "'\\', '.' or NUL, a '\\', a bad escape or a dot segment with "
				 "parameters); remove it",
				 shown);
	if (pn.len != len || memcmp(norm, s, len)) {
		char want[SHOWN_MAX];

		memcpy(out, norm, pn.len);
		out[pn.len] = '\0';
		sw_format_quoted(out, want, sizeof(want));
		return sw_errorf(e, -EINVAL,
				 "route \"%s\" is not in the normal form requests are matched in "
				 "(no dot segments, unreserved characters unescaped, escapes in upper "
				 "case); write \"%s\"",
				 shown, want);
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

int sw_parse_route(const char *s, char out[SW_PREFIX_MAX], struct sw_err *e)
{
	char shown[SHOWN_MAX], c[16];
	size_t len = strlen(s), i;

	sw_format_quoted(s, shown, sizeof(shown));
	if (s[0] != '/')
		return sw_errorf(e, -EINVAL,
				 "route \"%s\" does not start with '/'; give a path prefix like "
				 "\"/%s\"",
				 shown, len ? shown : "api");
	for (i = 0; i < len; i++) {
		if (s[i] == ';')
			return sw_errorf(e, -EINVAL,
					 "route \"%s\" contains ';'; routes are matched without "
					 "path parameters (';...'), as Java servers read paths",
					 shown);
		if (s[i] == '?' || s[i] == '#')
			return sw_errorf(
				e, -EINVAL,
				"route \"%s\" contains '%c'; a route matches the path only, "
				"so drop the query or fragment",
				shown, s[i]);
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return sw_errorf(e, -EINVAL,
					 "route \"%s\" contains %s; use printable ASCII and "
					 "percent-encode the rest, as requests do",
					 shown, show_char(s[i], c));
		if (s[i] == '/' && s[i + 1] == '/')
			return sw_errorf(e, -EINVAL,
					 "route \"%s\" has an empty segment (\"//\"); remove the "
					 "extra '/'",
					 shown);
	}
	/* "/api/" and "/api" are one route: keep the form without the trailing '/'. */
	if (len > 1 && s[len - 1] == '/')
		len--;
	if (len > SW_PREFIX_MAX - 1)
		return sw_errorf(e, -EINVAL,
				 "route \"%s\" is %zu characters long; shorten it to %d", shown,
				 len, SW_PREFIX_MAX - 1);
	return route_normal(s, len, shown, out, e);
}

int sw_parse_host(const char *s, char out[SW_HOST_MAX], struct sw_err *e)
{
	char shown[SHOWN_MAX], c[16], ip[INET6_ADDRSTRLEN];
	unsigned char ip6[16];
	size_t len = strlen(s), i;
	const char *colon, *end;

	sw_format_quoted(s, shown, sizeof(shown));
	if (!len)
		return sw_errorf(e, -EINVAL,
				 "host is empty; give a name like example.com, or no host to match "
				 "any");
	/* A Host header carries an IPv6 literal in brackets (RFC 9110 7.2), so the route must too.
	 */
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end || end == s + 1 || end - s - 1 >= (long)sizeof(ip))
			return sw_errorf(
				e, -EINVAL,
				"host \"%s\" is not a bracketed IPv6 address; write it like "
				"[2001:db8::1]",
				shown);
		if (end[1] == ':')
			goto has_port;
		memcpy(ip, s + 1, end - s - 1);
		ip[end - s - 1] = '\0';
		if (end[1] || inet_pton(AF_INET6, ip, ip6) != 1)
			return sw_errorf(
				e, -EINVAL,
				"host \"%s\" is not a bracketed IPv6 address; write it like "
				"[2001:db8::1]",
				shown);
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return sw_errorf(
				e, -EINVAL,
				"host \"%s\" looks like an IPv6 address; put it in brackets, "
				"like [::1]",
				shown);
		if (colon)
			goto has_port;
		for (i = 0; i < len; i++) {
			if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '.' && s[i] != '-')
				return sw_errorf(e, -EINVAL,
						 "host \"%s\" contains %s; use letters, digits, "
						 "'.' and '-', or a bracketed IPv6 address",
						 shown, show_char(s[i], c));
		}
	}
	if (s[0] != '[') {
		/* "example.com." names example.com; the decision code drops the dot too. */
		if (len > 1 && s[len - 1] == '.')
			len--;
		for (i = 0; i < len; i++)
			if (s[i] == '.' && (i == 0 || s[i - 1] == '.' || i + 1 == len))
				return sw_errorf(e, -EINVAL,
						 "host \"%s\" has an empty label; write it like "
						 "example.com",
						 shown);
	}
	if (len > SW_HOST_MAX - 1)
		return sw_errorf(e, -EINVAL, "host \"%s\" is %zu characters long; shorten it to %d",
				 shown, len, SW_HOST_MAX - 1);
	/* Hosts are case-insensitive; the decision code hashes the request's Host lowered. */
	for (i = 0; i < len; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i];
	out[len] = '\0';
	return 0;

has_port:
	return sw_errorf(e, -EINVAL,
			 "host \"%s\" has a port; drop it, routes match the Host without its port",
			 shown);
}

int sw_parse_header_name(const char *s, char out[SW_HEADER_NAME_MAX], struct sw_err *e)
{
	char shown[SHOWN_MAX], c[16];
	size_t len = strlen(s), i;

	sw_format_quoted(s, shown, sizeof(shown));
	if (!len)
		return sw_errorf(e, -EINVAL,
				 "header name is empty; give one like " SW_DEFAULT_SHARD_HEADER);
	for (i = 0; i < len; i++) {
		if (!is_token_char(s[i]))
			return sw_errorf(e, -EINVAL,
					 "header name \"%s\" contains %s; use letters, digits and "
					 "!#$%%&'*+-.^`|~ only",
					 shown, show_char(s[i], c));
		/* sockwayd drops fields named with '_' (CGI reads them as '-'), as nginx does. */
		if (s[i] == '_')
			return sw_errorf(e, -EINVAL,
					 "header name \"%s\" contains '_'; sockwayd drops such fields "
					 "from requests, so use '-'",
					 shown);
	}
	if (len > SW_HEADER_NAME_MAX - 1)
		return sw_errorf(e, -EINVAL,
				 "header name \"%s\" is %zu characters long; shorten it to %d",
				 shown, len, SW_HEADER_NAME_MAX - 1);
	memcpy(out, s, len + 1);
	return 0;
}

struct sw_policy *policy_alloc(void)
{
	return calloc(1, sizeof(struct sw_policy));
}

void policy_free(struct sw_policy *p)
{
	free(p);
}

static int backend_index(const struct sw_policy *p, const char *name)
{
	__u32 i;

	for (i = 0; i < p->nr_backends; i++) {
		if (!strcmp(p->backends[i].name, name))
			return i;
	}
	return -1;
}

static int endpoint_index(const struct sw_policy *p, const char *name)
{
	__u32 i;

	for (i = 0; i < p->nr_endpoints; i++) {
		if (!strcmp(p->endpoints[i].name, name))
			return i;
	}
	return -1;
}

struct sw_policy_backend *policy_find_backend(struct sw_policy *p, const char *name)
{
	int i = backend_index(p, name);

	return i < 0 ? NULL : &p->backends[i];
}

struct sw_policy_endpoint *policy_find_endpoint(struct sw_policy *p, const char *name)
{
	int i = endpoint_index(p, name);

	return i < 0 ? NULL : &p->endpoints[i];
}

static int weight_index(const struct sw_policy_endpoint *ep, const char *backend)
{
	__u32 i;

	for (i = 0; i < ep->nr_weights; i++) {
		if (!strcmp(ep->weights[i].backend, backend))
			return i;
	}
	return -1;
}

static int shadow_index(const struct sw_policy_endpoint *ep, const char *backend)
{
	__u32 i;

	for (i = 0; i < ep->nr_shadows; i++) {
		if (!strcmp(ep->shadows[i].backend, backend))
			return i;
	}
	return -1;
}

static int cmp_backend(const void *a, const void *b)
{
	return strcmp(((const struct sw_policy_backend *)a)->name,
		      ((const struct sw_policy_backend *)b)->name);
}

static int cmp_endpoint(const void *a, const void *b)
{
	return strcmp(((const struct sw_policy_endpoint *)a)->name,
		      ((const struct sw_policy_endpoint *)b)->name);
}

static int cmp_weight(const void *a, const void *b)
{
	return strcmp(((const struct sw_policy_weight *)a)->backend,
		      ((const struct sw_policy_weight *)b)->backend);
}

static int cmp_shadow(const void *a, const void *b)
{
	return strcmp(((const struct sw_policy_shadow *)a)->backend,
		      ((const struct sw_policy_shadow *)b)->backend);
}

void policy_sort(struct sw_policy *p)
{
	__u32 i;

	qsort(p->backends, p->nr_backends, sizeof(p->backends[0]), cmp_backend);
	qsort(p->endpoints, p->nr_endpoints, sizeof(p->endpoints[0]), cmp_endpoint);
	for (i = 0; i < p->nr_endpoints; i++) {
		struct sw_policy_endpoint *ep = &p->endpoints[i];

		qsort(ep->weights, ep->nr_weights, sizeof(ep->weights[0]), cmp_weight);
		qsort(ep->shadows, ep->nr_shadows, sizeof(ep->shadows[0]), cmp_shadow);
	}
}

/*
 * Makes room at the sorted position of an entry named name in an array of nr elements of
 * size bytes whose name is their first member; returns that position.
 */
static __u32 insert_slot(void *base, __u32 nr, size_t size, const char *name)
{
	char *arr = base;
	__u32 pos = 0;

	while (pos < nr && strcmp(arr + pos * size, name) < 0)
		pos++;
	memmove(arr + (pos + 1) * size, arr + pos * size, (nr - pos) * size);
	memset(arr + pos * size, 0, size);
	return pos;
}

/* Removes element pos and zeroes the freed last slot, so no stale entry lingers. */
static void remove_slot(void *base, __u32 nr, size_t size, __u32 pos)
{
	char *arr = base;

	memmove(arr + pos * size, arr + (pos + 1) * size, (nr - pos - 1) * size);
	memset(arr + (nr - 1) * size, 0, size);
}

/* Names in the model are char arrays that may come from maps: never read past them. */
static int check_terminated(const char *s, size_t size, const char *what, struct sw_err *e)
{
	if (memchr(s, '\0', size))
		return 0;
	return sw_errorf(e, -EINVAL, "%s is not terminated within %zu bytes; shorten it", what,
			 size);
}

/* IPv4 compares its four bytes only: the tail of addr[] carries no meaning for it. */
static bool same_addr(const struct sw_addr *a, const struct sw_addr *b)
{
	size_t n = a->family == AF_INET ? 4 : sizeof(a->addr);

	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, n);
}

static int check_backend(const struct sw_policy_backend *b, struct sw_err *e)
{
	char addr[SHOWN_MAX];
	__u32 i, j;
	int err;

	err = check_terminated(b->name, sizeof(b->name), "backend name", e);
	if (!err)
		err = sw_parse_name(b->name, "backend name", e);
	if (err)
		return err;
	if (!b->nr_replicas)
		return sw_errorf(e, -EINVAL,
				 "backend \"%s\" has no replicas; give it at least one ADDR:PORT",
				 b->name);
	if (b->nr_replicas > SW_MAX_REPLICAS)
		return sw_errorf(
			e, -ENOSPC,
			"backend \"%s\" has %u replicas (limit %d); give it fewer, or split "
			"it into several backends",
			b->name, b->nr_replicas, SW_MAX_REPLICAS);
	for (i = 0; i < b->nr_replicas; i++) {
		const struct sw_addr *a = &b->replicas[i];

		if ((a->family != AF_INET && a->family != AF_INET6) || !a->port)
			return sw_errorf(
				e, -EINVAL,
				"replica %u of backend \"%s\" is not a valid address (%s); "
				"give ADDR:PORT with a port from 1 to 65535",
				i + 1, b->name, sw_format_addr(a, addr, sizeof(addr)));
		for (j = 0; j < i; j++) {
			if (same_addr(a, &b->replicas[j]))
				return sw_errorf(e, -EINVAL,
						 "backend \"%s\" lists replica %s twice; list each "
						 "ADDR:PORT once",
						 b->name, sw_format_addr(a, addr, sizeof(addr)));
		}
	}
	return 0;
}

/*
 * A split or shadow names a backend that is not there. An edit can point at the CLI command
 * that creates it; in a policy file (apply replaces everything) the fix is in the file.
 */
static int check_backend_exists(const struct sw_policy *p, const char *endpoint,
				const char *backend, bool in_file, struct sw_err *e)
{
	int err;

	err = check_terminated(backend, SW_NAME_MAX, "backend name", e);
	if (err || backend_index(p, backend) >= 0)
		return err;
	err = sw_parse_name(backend, "backend name", e);
	if (err)
		return err;
	if (in_file)
		return sw_errorf(
			e, -ENOENT,
			"endpoint \"%s\" uses backend \"%s\", which is not defined; add it "
			"under \"backends\" or take it out of the endpoint",
			endpoint, backend);
	return sw_errorf(e, -ENOENT,
			 "backend \"%s\" does not exist; create it with \"sockway backend create "
			 "%s ADDR:PORT\"",
			 backend, backend);
}

static int serves_and_shadows(const char *endpoint, const char *backend, struct sw_err *e)
{
	return sw_errorf(e, -EINVAL,
			 "backend \"%s\" both serves and shadows endpoint \"%s\"; a shadow copy to "
			 "the backend that served the request is pointless, so take it out of the "
			 "traffic or the shadows",
			 backend, endpoint);
}

static int check_weights(const struct sw_policy *p, const char *endpoint,
			 const struct sw_policy_weight *w, __u32 nr, bool in_file, struct sw_err *e)
{
	char sum_s[32], w_s[32];
	__u64 sum = 0;
	__u32 i, j;
	int err;

	if (!nr)
		return sw_errorf(e, -EINVAL,
				 "endpoint \"%s\" has no traffic weights; give it at least one "
				 "backend with weight 1",
				 endpoint);
	if (nr > SW_MAX_SPLIT)
		return sw_errorf(
			e, -ENOSPC,
			"endpoint \"%s\" splits traffic between %u backends (limit %d); use "
			"fewer backends",
			endpoint, nr, SW_MAX_SPLIT);
	for (i = 0; i < nr; i++) {
		err = check_backend_exists(p, endpoint, w[i].backend, in_file, e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(w[i].backend, w[j].backend))
				return sw_errorf(e, -EINVAL,
						 "backend \"%s\" appears twice in the traffic of "
						 "endpoint \"%s\"; give each backend one weight",
						 w[i].backend, endpoint);
		}
		if (w[i].weight > SW_WEIGHT_ONE)
			return sw_errorf(
				e, -EINVAL,
				"weight %s of backend \"%s\" on endpoint \"%s\" is above 1; "
				"use weights from 0 to 1 that add up to 1",
				format_fixed(w[i].weight, w_s, sizeof(w_s)), w[i].backend,
				endpoint);
		sum += w[i].weight;
	}
	if (sum + SW_WEIGHT_TOLERANCE < SW_WEIGHT_ONE || sum > SW_WEIGHT_ONE + SW_WEIGHT_TOLERANCE)
		return sw_errorf(
			e, -EINVAL,
			"weights of endpoint \"%s\" sum to %s, not 1.0 (within %g); adjust "
			"them so they add up to 1",
			endpoint, format_fixed(sum, sum_s, sizeof(sum_s)),
			(double)SW_WEIGHT_TOLERANCE / SW_WEIGHT_ONE);
	return 0;
}

static int check_shadows(const struct sw_policy *p, const struct sw_policy_endpoint *ep,
			 bool in_file, struct sw_err *e)
{
	const struct sw_policy_shadow *sh = ep->shadows;
	char f_s[32];
	__u32 i, j;
	int err;

	if (ep->nr_shadows > SW_MAX_SHADOWS)
		return sw_errorf(e, -ENOSPC,
				 "endpoint \"%s\" has %u shadows (limit %d); remove some", ep->name,
				 ep->nr_shadows, SW_MAX_SHADOWS);
	for (i = 0; i < ep->nr_shadows; i++) {
		err = check_backend_exists(p, ep->name, sh[i].backend, in_file, e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(sh[i].backend, sh[j].backend))
				return sw_errorf(
					e, -EINVAL,
					"backend \"%s\" shadows endpoint \"%s\" twice; give "
					"it one fraction",
					sh[i].backend, ep->name);
		}
		if (!sh[i].fraction || sh[i].fraction > SW_WEIGHT_ONE)
			return sw_errorf(
				e, -EINVAL,
				"shadow fraction %s of backend \"%s\" on endpoint \"%s\" is "
				"out of range; use a number in (0, 1], or remove the shadow",
				format_fixed(sh[i].fraction, f_s, sizeof(f_s)), sh[i].backend,
				ep->name);
		if (weight_index(ep, sh[i].backend) >= 0)
			return serves_and_shadows(ep->name, sh[i].backend, e);
	}
	return 0;
}

/* Everything about one endpoint but its name's uniqueness; skip is its own index, or -1. */
static int check_endpoint(const struct sw_policy *p, const struct sw_policy_endpoint *ep, int skip,
			  bool in_file, struct sw_err *e)
{
	char norm[SW_PREFIX_MAX];
	__u32 i;
	int err;

	err = check_terminated(ep->name, sizeof(ep->name), "endpoint name", e);
	if (!err)
		err = sw_parse_name(ep->name, "endpoint name", e);
	if (!err)
		err = check_terminated(ep->route, sizeof(ep->route), "route", e);
	if (!err)
		err = check_terminated(ep->host, sizeof(ep->host), "host", e);
	if (!err)
		err = check_terminated(ep->shard_header, sizeof(ep->shard_header), "header name",
				       e);
	if (!err)
		err = sw_parse_route(ep->route, norm, e);
	if (err)
		return err;
	/* Routes are matched byte for byte: "/api/" would never match what "/api" does. */
	if (strcmp(norm, ep->route))
		return sw_errorf(e, -EINVAL,
				 "route \"%s\" of endpoint \"%s\" is not in normal form; "
				 "write it as \"%s\"",
				 ep->route, ep->name, norm);
	if (ep->host[0]) {
		err = sw_parse_host(ep->host, norm, e);
		if (err)
			return err;
		if (strcmp(norm, ep->host))
			return sw_errorf(
				e, -EINVAL,
				"host \"%s\" of endpoint \"%s\" is not in lower case; write "
				"it as \"%s\"",
				ep->host, ep->name, norm);
	}
	if (ep->methods & ~METHODS_KNOWN)
		return sw_errorf(
			e, -EINVAL,
			"endpoint \"%s\" has unknown method bits 0x%x; filter on GET, HEAD, "
			"POST, PUT, DELETE, PATCH, OPTIONS, CONNECT or TRACE only",
			ep->name, ep->methods & ~METHODS_KNOWN);
	err = sw_parse_header_name(ep->shard_header, norm, e);
	if (!err)
		err = check_weights(p, ep->name, ep->weights, ep->nr_weights, in_file, e);
	if (!err)
		err = check_shadows(p, ep, in_file, e);
	if (err)
		return err;
	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *other = &p->endpoints[i];

		if ((int)i == skip || strcmp(other->route, ep->route) ||
		    strcmp(other->host, ep->host))
			continue;
		return sw_errorf(
			e, -EEXIST,
			"endpoint \"%s\" already has route %s on %s%s; give endpoint \"%s\" "
			"another route or host",
			other->name, ep->route, ep->host[0] ? "host " : "any host", ep->host,
			ep->name);
	}
	return 0;
}

int policy_add_backend(struct sw_policy *p, const struct sw_policy_backend *b, struct sw_err *e)
{
	struct sw_policy_backend *dst;
	int err;

	err = check_terminated(b->name, sizeof(b->name), "backend name", e);
	if (!err)
		err = sw_parse_name(b->name, "backend name", e);
	if (err)
		return err;
	if (backend_index(p, b->name) >= 0)
		return sw_errorf(e, -EEXIST,
				 "backend \"%s\" already exists; pick another name, or delete it "
				 "first with \"sockway backend delete %s\"",
				 b->name, b->name);
	if (p->nr_backends >= SW_MAX_BACKENDS)
		return sw_errorf(e, -ENOSPC,
				 "too many backends (limit %d); delete one you no longer need with "
				 "\"sockway backend delete NAME\"",
				 SW_MAX_BACKENDS);
	err = check_backend(b, e);
	if (err)
		return err;

	/* Copy field by field so that bytes past the name and the replicas stay zero. */
	dst = &p->backends[insert_slot(p->backends, p->nr_backends, sizeof(*dst), b->name)];
	strcpy(dst->name, b->name);
	dst->nr_replicas = b->nr_replicas;
	memcpy(dst->replicas, b->replicas, b->nr_replicas * sizeof(b->replicas[0]));
	p->nr_backends++;
	return 0;
}

/* Appends name to a comma-separated list in buf; counts what no longer fits in *more. */
static void list_append(char *buf, size_t len, const char *name, __u32 *more)
{
	size_t n = strlen(buf);

	/* Leave room for " and 256 more" so the message keeps its ending. */
	if (*more || n + strlen(name) + 2 + 16 > len) {
		(*more)++;
		return;
	}
	snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
}

int policy_del_backend(struct sw_policy *p, const char *name, struct sw_err *e)
{
	char users[256] = "", shown[SHOWN_MAX];
	__u32 i, nr_users = 0, more = 0;
	size_t n;
	int pos;

	pos = backend_index(p, name);
	if (pos < 0)
		return sw_errorf(
			e, -ENOENT,
			"backend \"%s\" does not exist; \"sockway backend list\" shows the "
			"backends there are",
			sw_format_quoted(name, shown, sizeof(shown)));
	/* A weight of 0 still counts: it keeps the backend's counter cell for a rollback. */
	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &p->endpoints[i];

		if (weight_index(ep, name) < 0 && shadow_index(ep, name) < 0)
			continue;
		list_append(users, sizeof(users), ep->name, &more);
		nr_users++;
	}
	if (nr_users) {
		n = strlen(users);
		if (more)
			snprintf(users + n, sizeof(users) - n, " and %u more", more);
		return sw_errorf(e, -EBUSY,
				 "cannot delete backend \"%s\": %s %s %s it; move %s traffic and "
				 "shadows off it first",
				 name, nr_users == 1 ? "endpoint" : "endpoints", users,
				 nr_users == 1 ? "uses" : "use", nr_users == 1 ? "its" : "their");
	}
	remove_slot(p->backends, p->nr_backends, sizeof(p->backends[0]), pos);
	p->nr_backends--;
	return 0;
}

static void copy_weights(struct sw_policy_weight *dst, const struct sw_policy_weight *src, __u32 nr)
{
	__u32 i;

	for (i = 0; i < nr; i++) {
		strcpy(dst[i].backend, src[i].backend);
		dst[i].weight = src[i].weight;
	}
	qsort(dst, nr, sizeof(dst[0]), cmp_weight);
}

int policy_add_endpoint(struct sw_policy *p, const struct sw_policy_endpoint *ep, struct sw_err *e)
{
	struct sw_policy_endpoint *dst;
	__u32 i;
	int err;

	err = check_terminated(ep->name, sizeof(ep->name), "endpoint name", e);
	if (!err)
		err = sw_parse_name(ep->name, "endpoint name", e);
	if (err)
		return err;
	if (endpoint_index(p, ep->name) >= 0)
		return sw_errorf(e, -EEXIST,
				 "endpoint \"%s\" already exists; pick another name, or delete it "
				 "first with \"sockway endpoint delete %s\"",
				 ep->name, ep->name);
	if (p->nr_endpoints >= SW_MAX_ENDPOINTS)
		return sw_errorf(
			e, -ENOSPC,
			"too many endpoints (limit %d); delete one you no longer need with "
			"\"sockway endpoint delete NAME\"",
			SW_MAX_ENDPOINTS);
	err = check_endpoint(p, ep, -1, false, e);
	if (err)
		return err;

	/* Field by field, as in policy_add_backend(): unused bytes stay zero. */
	dst = &p->endpoints[insert_slot(p->endpoints, p->nr_endpoints, sizeof(*dst), ep->name)];
	strcpy(dst->name, ep->name);
	strcpy(dst->route, ep->route);
	strcpy(dst->host, ep->host);
	dst->methods = ep->methods;
	strcpy(dst->shard_header, ep->shard_header);
	dst->nr_weights = ep->nr_weights;
	copy_weights(dst->weights, ep->weights, ep->nr_weights);
	dst->nr_shadows = ep->nr_shadows;
	for (i = 0; i < ep->nr_shadows; i++) {
		strcpy(dst->shadows[i].backend, ep->shadows[i].backend);
		dst->shadows[i].fraction = ep->shadows[i].fraction;
	}
	qsort(dst->shadows, dst->nr_shadows, sizeof(dst->shadows[0]), cmp_shadow);
	p->nr_endpoints++;
	return 0;
}

static int no_such_endpoint(const char *name, struct sw_err *e)
{
	char shown[SHOWN_MAX];

	return sw_errorf(e, -ENOENT,
			 "endpoint \"%s\" does not exist; \"sockway endpoint list\" shows the "
			 "endpoints there are",
			 sw_format_quoted(name, shown, sizeof(shown)));
}

int policy_del_endpoint(struct sw_policy *p, const char *name, struct sw_err *e)
{
	int pos = endpoint_index(p, name);

	if (pos < 0)
		return no_such_endpoint(name, e);
	remove_slot(p->endpoints, p->nr_endpoints, sizeof(p->endpoints[0]), pos);
	p->nr_endpoints--;
	return 0;
}

int policy_set_traffic(struct sw_policy *p, const char *endpoint,
		       const struct sw_policy_weight *weights, __u32 nr, struct sw_err *e)
{
	struct sw_policy_endpoint *ep;
	__u32 i;
	int err;

	ep = policy_find_endpoint(p, endpoint);
	if (!ep)
		return no_such_endpoint(endpoint, e);
	err = check_weights(p, ep->name, weights, nr, false, e);
	if (err)
		return err;
	/* The new split must not take in a backend that shadows this endpoint. */
	for (i = 0; i < nr; i++) {
		if (shadow_index(ep, weights[i].backend) >= 0)
			return serves_and_shadows(ep->name, weights[i].backend, e);
	}
	memset(ep->weights, 0, sizeof(ep->weights));
	copy_weights(ep->weights, weights, nr);
	ep->nr_weights = nr;
	return 0;
}

int policy_set_shadow(struct sw_policy *p, const char *endpoint, const char *backend,
		      __u32 fraction, struct sw_err *e)
{
	struct sw_policy_endpoint *ep;
	struct sw_policy_shadow *sh;
	char f_s[32];
	int pos, err;

	ep = policy_find_endpoint(p, endpoint);
	if (!ep)
		return no_such_endpoint(endpoint, e);
	err = check_backend_exists(p, ep->name, backend, false, e);
	if (err)
		return err;
	if (fraction > SW_WEIGHT_ONE)
		return sw_errorf(
			e, -EINVAL,
			"shadow fraction %s of backend \"%s\" is above 1; use 0 (stop) to 1 "
			"(copy every request)",
			format_fixed(fraction, f_s, sizeof(f_s)), backend);
	pos = shadow_index(ep, backend);
	/* Stopping a shadow that is not there is already done: scripts can repeat it. */
	if (!fraction) {
		if (pos >= 0) {
			remove_slot(ep->shadows, ep->nr_shadows, sizeof(ep->shadows[0]), pos);
			ep->nr_shadows--;
		}
		return 0;
	}
	if (weight_index(ep, backend) >= 0)
		return serves_and_shadows(ep->name, backend, e);
	if (pos >= 0) {
		ep->shadows[pos].fraction = fraction;
		return 0;
	}
	if (ep->nr_shadows >= SW_MAX_SHADOWS)
		return sw_errorf(e, -ENOSPC,
				 "endpoint \"%s\" already has %d shadows (limit %d); stop one with "
				 "\"sockway shadow set %s BACKEND 0\"",
				 ep->name, SW_MAX_SHADOWS, SW_MAX_SHADOWS, ep->name);
	sh = &ep->shadows[insert_slot(ep->shadows, ep->nr_shadows, sizeof(*sh), backend)];
	strcpy(sh->backend, backend);
	sh->fraction = fraction;
	ep->nr_shadows++;
	return 0;
}

int policy_validate(const struct sw_policy *p, struct sw_err *e)
{
	__u32 i, j;
	int err;

	if (p->nr_backends > SW_MAX_BACKENDS)
		return sw_errorf(e, -ENOSPC, "too many backends (%u, limit %d); remove some",
				 p->nr_backends, SW_MAX_BACKENDS);
	if (p->nr_endpoints > SW_MAX_ENDPOINTS)
		return sw_errorf(e, -ENOSPC, "too many endpoints (%u, limit %d); remove some",
				 p->nr_endpoints, SW_MAX_ENDPOINTS);
	/*
	 * Duplicates are found pairwise rather than between neighbours: a policy read back from
	 * the maps comes in id order, and 256 x 256 name comparisons cost well under a millisecond.
	 */
	for (i = 0; i < p->nr_backends; i++) {
		err = check_backend(&p->backends[i], e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(p->backends[i].name, p->backends[j].name))
				return sw_errorf(e, -EEXIST,
						 "backend \"%s\" is defined twice; keep one "
						 "definition",
						 p->backends[i].name);
		}
	}
	for (i = 0; i < p->nr_endpoints; i++) {
		err = check_endpoint(p, &p->endpoints[i], i, true, e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(p->endpoints[i].name, p->endpoints[j].name))
				return sw_errorf(e, -EEXIST,
						 "endpoint \"%s\" is defined twice; keep one "
						 "definition",
						 p->endpoints[i].name);
		}
	}
	return 0;
}

socklen_t sw_addr_to_sockaddr(const struct sw_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->addr, 4);
		return sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->addr, 16);
		return sizeof(*sin6);
	}
}
