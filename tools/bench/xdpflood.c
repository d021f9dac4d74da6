// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * xdpflood: a SYN flood delivered as XDP frames, for the guard benchmark
 * (tools/bench/guard.sh), never for anything outside the namespaces that benchmark makes.
 *
 *   xdpflood --via IFACE --peer IFACE --out IFACE --dst-mac MAC --src ADDR --dst ADDR:PORT
 *            --seconds S [--pps N]
 *
 * A raw socket's packets reach a veth as socket buffers, which hides what XDP saves on a
 * real NIC. So the SYNs (each with its own source port and a valid checksum) are written
 * as Ethernet frames into IFACE --via (AF_PACKET, batches of 64); its veth peer --peer
 * runs bench/bpf/xdpflood.bpf.c, which redirects each one out of --out (the veth end that
 * faces the host, whose MAC there is --dst-mac) as an XDP frame: the host's end sees it
 * as it would see a NIC's packet. --pps paces it (default: as fast as one core sends).
 * Prints {"sent": N, "seconds": S}. The program is detached at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define BATCH 64

struct frame {
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
	uint8_t opts[4]; /* MSS 1460 */
} __attribute__((packed));

static uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint16_t *p = data;

	for (; len > 1; len -= 2)
		sum += *p++;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The device's driver is veth (ETHTOOL_GDRVINFO). */
static int is_veth(const char *name)
{
	struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM, 0), ok;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_data = (void *)&info;
	ok = fd >= 0 && !ioctl(fd, SIOCETHTOOL, &ifr) && !strcmp(info.driver, "veth");
	if (fd >= 0)
		close(fd);
	return ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: xdpflood --via IFACE --peer IFACE --out IFACE --dst-mac MAC "
			"--src ADDR --dst ADDR:PORT --seconds S [--pps N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"out", required_argument, NULL, 'i'},
		{"via", required_argument, NULL, 'v'},
		{"peer", required_argument, NULL, 'e'},
		{"dst-mac", required_argument, NULL, 'm'},
		{"src", required_argument, NULL, 's'},
		{"dst", required_argument, NULL, 'd'},
		{"seconds", required_argument, NULL, 't'},
		{"pps", required_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	struct frame f = {};
	struct in_addr src = {0}, dst = {0};
	unsigned mac[6];
	const char *dev = NULL, *via = NULL, *peer = NULL;
	struct frame frames[BATCH];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_ll ll = {.sll_family = AF_PACKET};
	unsigned via_index, peer_index;
	uint32_t seed = (uint32_t)getpid() * 2654435761u;
	int pfd, n;
	char obj_path[PATH_MAX], self[PATH_MAX];
	double seconds = 0, pps = 0, start, t;
	unsigned long long sent = 0;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map, *rodata = NULL;
	struct ifreq ifr = {};
	unsigned ifindex;
	uint16_t port = 0;
	uint32_t sum;
	char *colon;
	int opt, fd, err, i, have_mac = 0, rc = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			dev = optarg;
			break;
		case 'v':
			via = optarg;
			break;
		case 'e':
			peer = optarg;
			break;
		case 'm':
			if (sscanf(optarg, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3],
				   &mac[4], &mac[5]) != 6)
				usage();
			for (i = 0; i < 6; i++)
				f.eth.h_dest[i] = (uint8_t)mac[i];
			have_mac = 1;
			break;
		case 's':
			if (inet_pton(AF_INET, optarg, &src) != 1)
				usage();
			break;
		case 'd':
			colon = strrchr(optarg, ':');
			if (!colon)
				usage();
			*colon = '\0';
			if (inet_pton(AF_INET, optarg, &dst) != 1)
				usage();
			port = (uint16_t)atoi(colon + 1);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'p':
			pps = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (!dev || !via || !peer || !have_mac || !src.s_addr || !dst.s_addr || !port ||
	    seconds <= 0)
		usage();
	/* Never on a real interface: only on the veth pairs a benchmark made. */
	if (!is_veth(dev) || !is_veth(via) || !is_veth(peer)) {
		fprintf(stderr, "xdpflood: %s, %s and %s must all be veth devices\n", dev, via,
			peer);
		return 1;
	}
	ifindex = if_nametoindex(dev);
	via_index = if_nametoindex(via);
	peer_index = if_nametoindex(peer);
	if (!via_index || !peer_index) {
		fprintf(stderr, "xdpflood: no interface %s or %s here\n", via, peer);
		return 1;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (!ifindex || fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr)) {
		fprintf(stderr, "xdpflood: no interface %s here\n", dev);
		return 1;
	}
	close(fd);
	memcpy(f.eth.h_source, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	f.eth.h_proto = htons(ETH_P_IP);
	f.ip.version = 4;
	f.ip.ihl = 5;
	f.ip.ttl = 64;
	f.ip.protocol = IPPROTO_TCP;
	f.ip.tot_len = htons(sizeof(f) - sizeof(f.eth));
	f.ip.saddr = src.s_addr;
	f.ip.daddr = dst.s_addr;
	f.ip.check = csum_fold(csum_add(0, &f.ip, sizeof(f.ip)));
	f.tcp.source = htons(1024);
	f.tcp.dest = htons(port);
	f.tcp.seq = htonl((uint32_t)getpid() * 2654435761u);
	f.tcp.doff = (sizeof(f.tcp) + sizeof(f.opts)) / 4;
	f.tcp.syn = 1;
	f.tcp.window = htons(64240);
	f.opts[0] = 2;
	f.opts[1] = 4;
	f.opts[2] = 1460 >> 8;
	f.opts[3] = 1460 & 0xff;
	sum = csum_add(0, &f.ip.saddr, 8);
	sum += htons(IPPROTO_TCP) + htons(sizeof(f.tcp) + sizeof(f.opts));
	f.tcp.check = csum_fold(csum_add(sum, &f.tcp, sizeof(f.tcp) + sizeof(f.opts)));

	/* The program sits next to this binary. */
	if (!realpath("/proc/self/exe", self))
		snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(obj_path, sizeof(obj_path), "%s/xdpflood.bpf.o", dirname(self));
	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj) {
		fprintf(stderr, "xdpflood: cannot open %s: %s\n", obj_path, strerror(errno));
		return 1;
	}
	prog = bpf_object__find_program_by_name(obj, "xdpflood");
	/* out_ifindex is the object's only read-only global. */
	bpf_object__for_each_map(map, obj)
	{
		const char *name = bpf_map__name(map);
		size_t n = strlen(name);

		if (n > 7 && !strcmp(name + n - 7, ".rodata"))
			rodata = map;
	}
	if (!rodata || bpf_map__set_initial_value(rodata, &ifindex, sizeof(ifindex))) {
		fprintf(stderr, "xdpflood: %s has no out_ifindex to set\n", obj_path);
		return 1;
	}
	err = bpf_object__load(obj);
	if (err || !prog) {
		fprintf(stderr, "xdpflood: cannot load %s: %s\n", obj_path, strerror(-err));
		return 1;
	}
	err = bpf_xdp_attach((int)peer_index, bpf_program__fd(prog),
			     XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
	if (err) {
		fprintf(stderr, "xdpflood: cannot attach to %s: %s\n", peer, strerror(-err));
		return 1;
	}
	pfd = socket(AF_PACKET, SOCK_RAW, 0);
	ll.sll_ifindex = (int)via_index;
	ll.sll_halen = ETH_ALEN;
	memcpy(ll.sll_addr, f.eth.h_dest, ETH_ALEN);
	if (pfd < 0 || bind(pfd, (struct sockaddr *)&ll, sizeof(ll))) {
		perror("xdpflood: packet socket");
		rc = 1;
		goto detach;
	}
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < BATCH; i++) {
		frames[i] = f;
		iov[i].iov_base = &frames[i];
		iov[i].iov_len = sizeof(f);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	start = now_s();
	for (t = start; t - start < seconds; t = now_s()) {
		if (pps > 0 && (double)sent > (t - start) * pps) {
			usleep(1000);
			continue;
		}
		for (i = 0; i < BATCH; i++) {
			seed = seed * 1103515245u + 12345u;
			frames[i].tcp.source = htons((uint16_t)(1024 + (seed >> 16) % 60000));
			frames[i].tcp.seq = htonl(seed);
			frames[i].tcp.check = 0;
			frames[i].tcp.check = csum_fold(
				csum_add(sum, &frames[i].tcp, sizeof(f.tcp) + sizeof(f.opts)));
		}
		n = sendmmsg(pfd, msgs, BATCH, 0);
		if (n < 0 && errno != ENOBUFS && errno != EAGAIN) {
			perror("xdpflood: sendmmsg");
			rc = 1;
			break;
		}
		if (n > 0)
			sent += (unsigned long long)n;
	}
	printf("{\"sent\": %llu, \"seconds\": %.3f}\n", sent, now_s() - start);
detach:
	bpf_xdp_detach((int)peer_index, XDP_FLAGS_DRV_MODE, NULL);
	bpf_object__close(obj);
	return rc;
}
