// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * bpf_lines: where a loaded BPF program spends its samples, by source line, from the
 * kernel's own line info. Debian's bpftool has no libbfd (no `prog dump jited`) and perf
 * has no BPF disassembler, so a profile of sk_msg ends at "bpf_prog_..._msg_redirect".
 * The kernel keeps, for each program it loaded with BTF, the JIT address of every source
 * line record (jited_line_info); this maps sample addresses onto them.
 *
 *   perf record -a -o perf.data -- sleep 5          (while the traffic runs; no -g)
 *   perf script -i perf.data -F ip | bpf_lines PROG_ID [--top N]
 *   bpf_lines PROG_ID --lines                      (every record: address, function, line)
 *
 * Run it as root while the program is still loaded. Input: one sample address per line, in
 * hex (what `perf script -F ip` prints; recorded with -g it would print every frame of each
 * call chain too, and return addresses would count as samples); addresses outside the
 * program and its subprograms are counted as outside. A sample is charged to the last line
 * record at or before its address, and the output sums a function's records of one source
 * line (inlining gives a line many). A sample usually lands just after the instruction that
 * stalled (skid): a line may carry its predecessor's cost, typically a load that missed the
 * cache.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>

struct rec {
	__u64 addr;
	__u32 func; /* index into the program's functions */
	__u32 line;
	__u32 order; /* in the kernel's list: of two at one address, the later owns its bytes */
	const char *path, *file, *text; /* file: path's last part */
	__u64 samples;
};

struct prog {
	char name[BPF_OBJ_NAME_LEN];
	__u32 nr_funcs, nr_recs;
	__u64 *ksyms;
	__u32 *lens;
	const char **func_names;
	struct rec *recs; /* by address */
	struct btf *btf;
};

static int by_addr(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Records of one function's source line next to each other. */
static int by_line(const void *a, const void *b)
{
	const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;
	int c;

	if (x->func != y->func)
		return x->func < y->func ? -1 : 1;
	c = strcmp(x->path, y->path);
	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static bool by_line_same(const struct rec *x, const struct rec *y)
{
	return x->func == y->func && x->line == y->line && !strcmp(x->path, y->path);
}

static int by_samples(const void *a, const void *b)
{
	const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;

	if (x->samples != y->samples)
		return x->samples < y->samples ? 1 : -1;
	return by_line(a, b);
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path ? path : "?";
}

static int prog_read(__u32 id, struct prog *p)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), nl, njl, nk, nfi, lrs, fis, i, k;
	struct bpf_func_info *fi = NULL;
	__u64 *jli = NULL;
	void *li = NULL;
	int fd, err = 0;

	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0) {
		fprintf(stderr, "bpf_lines: no program %u: %s\n", id, strerror(errno));
		return -1;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "bpf_lines: program %u: %s\n", id, strerror(errno));
		close(fd);
		return -1;
	}
	memcpy(p->name, info.name, sizeof(p->name));
	nl = info.nr_line_info;
	njl = info.nr_jited_line_info;
	nk = info.nr_jited_ksyms;
	nfi = info.nr_func_info;
	lrs = info.line_info_rec_size;
	fis = info.func_info_rec_size;
	if (!info.jited_prog_len && !info.xlated_prog_len) {
		fprintf(stderr,
			"bpf_lines: program %u: the kernel shows nothing of it (not root?)\n", id);
		close(fd);
		return -1;
	}
	if (!nl || nl != njl || !nk || !info.btf_id || lrs < sizeof(struct bpf_line_info) ||
	    (nfi && (nfi != nk || fis < sizeof(struct bpf_func_info)))) {
		fprintf(stderr,
			"bpf_lines: program %u has no JIT line info (not JITed, or no BTF)\n", id);
		close(fd);
		return -1;
	}
	li = calloc(nl, lrs);
	jli = calloc(njl, sizeof(*jli));
	fi = nfi ? calloc(nfi, fis) : NULL;
	p->ksyms = calloc(nk, sizeof(*p->ksyms));
	p->lens = calloc(nk, sizeof(*p->lens));
	p->func_names = calloc(nk, sizeof(*p->func_names));
	p->recs = calloc(nl, sizeof(*p->recs));
	if (!li || !jli || (nfi && !fi) || !p->ksyms || !p->lens || !p->func_names || !p->recs) {
		fprintf(stderr, "bpf_lines: out of memory\n");
		err = -1;
		goto out;
	}
	memset(&info, 0, sizeof(info));
	info.nr_line_info = nl;
	info.line_info_rec_size = lrs;
	info.line_info = (unsigned long)li;
	info.nr_jited_line_info = njl;
	info.jited_line_info_rec_size = sizeof(*jli);
	info.jited_line_info = (unsigned long)jli;
	info.nr_jited_ksyms = nk;
	info.jited_ksyms = (unsigned long)p->ksyms;
	info.nr_jited_func_lens = nk;
	info.jited_func_lens = (unsigned long)p->lens;
	info.nr_func_info = nfi;
	info.func_info_rec_size = fis;
	info.func_info = (unsigned long)fi;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "bpf_lines: program %u: %s\n", id, strerror(errno));
		err = -1;
		goto out;
	}
	/* Where the kernel hides its addresses (kptr_restrict) it answers, without them. */
	if (!info.jited_ksyms || !info.jited_func_lens || !info.jited_line_info) {
		fprintf(stderr,
			"bpf_lines: program %u: the kernel hides its JIT addresses "
			"(kernel.kptr_restrict, or not root)\n",
			id);
		err = -1;
		goto out;
	}
	p->btf = btf__load_from_kernel_by_id(info.btf_id);
	if (!p->btf) {
		fprintf(stderr, "bpf_lines: program %u: its BTF: %s\n", id, strerror(errno));
		err = -1;
		goto out;
	}
	p->nr_funcs = nk;
	for (k = 0; k < nk; k++) {
		const struct bpf_func_info *f = fi ? (void *)((char *)fi + (size_t)k * fis) : NULL;
		const struct btf_type *t = f ? btf__type_by_id(p->btf, f->type_id) : NULL;

		p->func_names[k] = t ? btf__name_by_offset(p->btf, t->name_off) : NULL;
		if (!p->func_names[k] || !*p->func_names[k])
			p->func_names[k] = k ? "?" : p->name;
	}
	for (i = 0; i < nl; i++) {
		const struct bpf_line_info *l = (void *)((char *)li + (size_t)i * lrs);
		struct rec *r = &p->recs[p->nr_recs];

		r->addr = jli[i];
		r->order = i;
		for (k = 0; k < nk; k++)
			if (r->addr >= p->ksyms[k] && r->addr - p->ksyms[k] < p->lens[k])
				break;
		if (k == nk)
			continue; /* not in any function: no sample can land there */
		r->func = k;
		r->line = BPF_LINE_INFO_LINE_NUM(l->line_col);
		r->path = btf__name_by_offset(p->btf, l->file_name_off);
		if (!r->path)
			r->path = "?";
		r->file = base_name(r->path);
		r->text = btf__name_by_offset(p->btf, l->line_off);
		if (!r->text)
			r->text = "";
		while (*r->text == ' ' || *r->text == '\t')
			r->text++;
		p->nr_recs++;
	}
	qsort(p->recs, p->nr_recs, sizeof(*p->recs), by_addr);
out:
	free(li);
	free(jli);
	free(fi);
	close(fd);
	return err;
}

static void prog_free(struct prog *p)
{
	btf__free(p->btf);
	free(p->ksyms);
	free(p->lens);
	free(p->func_names);
	free(p->recs);
}

/* The record a sample at addr is charged to, or NULL when it is outside the program. */
static struct rec *rec_of(struct prog *p, __u64 addr)
{
	size_t lo = 0, hi = p->nr_recs;
	__u32 k;

	for (k = 0; k < p->nr_funcs; k++)
		if (addr >= p->ksyms[k] && addr - p->ksyms[k] < p->lens[k])
			break;
	if (k == p->nr_funcs)
		return NULL;
	/* The last record at or before addr; it must be of the same function. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->recs[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || p->recs[lo - 1].func != k)
		return NULL;
	return &p->recs[lo - 1];
}

static int usage(void)
{
	fprintf(stderr, "usage: perf script -F ip | bpf_lines PROG_ID [--top N]\n"
			"       bpf_lines PROG_ID --lines\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long top = 40, id;
	__u64 inside = 0, outside = 0, bad = 0, addr;
	struct prog p = {};
	struct rec **order;
	char *line = NULL, *end;
	bool lines = false;
	size_t i, j, cap = 0;
	ssize_t got;

	if (argc < 2)
		return usage();
	errno = 0;
	id = strtoul(argv[1], &end, 10);
	if (errno || *end || !*argv[1] || id > 0xffffffffUL)
		return usage();
	for (i = 2; i < (size_t)argc; i++) {
		if (!strcmp(argv[i], "--lines")) {
			lines = true;
		} else if (!strcmp(argv[i], "--top") && i + 1 < (size_t)argc) {
			errno = 0;
			top = strtoul(argv[++i], &end, 10);
			if (errno || *end || !top)
				return usage();
		} else {
			return usage();
		}
	}
	if (prog_read((__u32)id, &p)) {
		prog_free(&p);
		return 1;
	}
	if (lines) {
		for (i = 0; i < p.nr_recs; i++)
			printf("%llx %s+0x%llx %s:%u %s\n", (unsigned long long)p.recs[i].addr,
			       p.func_names[p.recs[i].func],
			       (unsigned long long)(p.recs[i].addr - p.ksyms[p.recs[i].func]),
			       p.recs[i].file, p.recs[i].line, p.recs[i].text);
		prog_free(&p);
		return 0;
	}
	while ((got = getline(&line, &cap, stdin)) >= 0) {
		struct rec *r;
		char *s = line;

		while (got && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		/* A hex number alone (strtoull would take a sign, or stop at a NUL). */
		errno = 0;
		addr = isxdigit((unsigned char)*s) ? strtoull(s, &end, 16) : 0;
		if (!isxdigit((unsigned char)*s) || errno || strlen(line) != (size_t)got ||
		    (*end && *end != ' ' && *end != '\t')) {
			bad++;
			continue;
		}
		r = rec_of(&p, addr);
		if (r) {
			r->samples++;
			inside++;
		} else {
			outside++;
		}
	}
	free(line);
	if (ferror(stdin)) {
		fprintf(stderr, "bpf_lines: reading the samples: %s\n", strerror(errno));
		prog_free(&p);
		return 1;
	}
	order = calloc(p.nr_recs ? p.nr_recs : 1, sizeof(*order));
	if (!order) {
		fprintf(stderr, "bpf_lines: out of memory\n");
		prog_free(&p);
		return 1;
	}
	for (i = 0; i < p.nr_recs; i++)
		order[i] = &p.recs[i];
	/* Each line's samples onto its first record, the others' to 0. */
	qsort(order, p.nr_recs, sizeof(*order), by_line);
	for (i = 1, j = 0; i < p.nr_recs; i++) {
		if (by_line_same(order[j], order[i])) {
			order[j]->samples += order[i]->samples;
			order[i]->samples = 0;
		} else {
			j = i;
		}
	}
	qsort(order, p.nr_recs, sizeof(*order), by_samples);
	printf("# program %lu (%s): %llu samples in it, %llu outside, %llu lines unread\n", id,
	       p.name, (unsigned long long)inside, (unsigned long long)outside,
	       (unsigned long long)bad);
	for (i = 0; i < p.nr_recs && i < top && order[i]->samples; i++)
		printf("%8llu %5.1f%% %-20s %s:%u %s\n", (unsigned long long)order[i]->samples,
		       100.0 * (double)order[i]->samples / (double)inside,
		       p.func_names[order[i]->func], order[i]->file, order[i]->line,
		       order[i]->text);
	free(order);
	prog_free(&p);
	return 0;
}
