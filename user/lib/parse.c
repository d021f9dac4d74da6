// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Operator input (parse.h): a parser per kind of value, each refusing with a message that
 * quotes the input safely and says what to write instead, and the formatters that print the
 * values back in the form the parsers read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "parse.h"
#include "sockway/norm.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Methods in SW_METHOD_* bit order: bit i is method_names[i]. */
static const char *const method_names[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
};
_Static_assert(SW_METHOD_GET == 1U << 0 && SW_METHOD_TRACE == 1U << 8,
	       "method_names[] follows the SW_METHOD_* bits");
_Static_assert(SW_METHODS_KNOWN == (1U << ARRAY_SIZE(method_names)) - 1,
	       "SW_METHODS_KNOWN names the bits of method_names[]");

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
char *sw_format_fraction(__u64 v, char *buf, size_t len)
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

int sw_parse_name(const char *s, const char *what, struct sw_err *e)
{
	char shown[SW_SHOWN_MAX], c[16];
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
	char shown[SW_SHOWN_MAX], host[INET6_ADDRSTRLEN];
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
	char shown[SW_SHOWN_MAX];
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
	char shown[SW_SHOWN_MAX];
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
	char shown[SW_SHOWN_MAX], word[SW_SHOWN_MAX];
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
		char want[SW_SHOWN_MAX];

		memcpy(out, norm, pn.len);
		out[pn.len] = '\0';
		sw_format_quoted(out, want, sizeof(want));
		return sw_errorf(
			e, -EINVAL,
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
	char shown[SW_SHOWN_MAX], c[16];
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
	char shown[SW_SHOWN_MAX], c[16], ip[INET6_ADDRSTRLEN];
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
	char shown[SW_SHOWN_MAX], c[16];
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
			return sw_errorf(
				e, -EINVAL,
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
