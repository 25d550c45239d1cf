/* SPDX-License-Identifier: GPL-2.0 */
/* A minimal socket-level load balancer, for bench/lb_socket_vs_tc.py only (not netcc's
 * datapath): the alternative to netcc's tc-level DNAT that issue 7 asks to measure.
 *
 * Services (VIP:port, each with up to LBS_MAX_BACKENDS backends) and the reverse table are
 * written by the benchmark into lbs_services and lbs_reverse. Attached to one cgroup v2:
 * - cgroup/connect4: a TCP or UDP connect() to VIP:port is rewritten to a backend chosen by a
 *   hash of the socket cookie, before the route lookup; no packet of the connection is ever
 *   addressed to the VIP, so nothing is translated per packet.
 * - cgroup/sendmsg4: the same for an unconnected UDP sendto(VIP:port).
 * - cgroup/recvmsg4: a UDP reply from a backend's targetPort is reported to the application as
 *   coming from VIP:port (the reverse translation happens at recvmsg(), not per packet).
 * Anything else passes untouched (return 1 = allow).
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define LBS_MAX_BACKENDS 8

/* An IPv4 address and port, both in network order, as bpf_sock_addr holds them. */
struct lbs_addr {
	__u32 ip;
	__u32 port; /* the low 16 bits */
};

struct lbs_service {
	__u32 target_port;                /* network order in the low 16 bits */
	__u32 count;                      /* backends in use, 1..LBS_MAX_BACKENDS */
	__u32 backends[LBS_MAX_BACKENDS]; /* network order */
};

/* VIP:port -> its backends. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct lbs_addr);
	__type(value, struct lbs_service);
} lbs_services SEC(".maps");

/* backend:targetPort -> VIP:port, for UDP replies. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct lbs_addr);
	__type(value, struct lbs_addr);
} lbs_reverse SEC(".maps");

/* VIP:port -> one backend:targetPort, chosen by the socket's cookie (stable per socket). */
static __always_inline int translate(struct bpf_sock_addr *ctx)
{
	struct lbs_addr key = { .ip = ctx->user_ip4, .port = ctx->user_port };
	struct lbs_service *svc = bpf_map_lookup_elem(&lbs_services, &key);
	__u64 cookie;
	__u32 slot;

	if (!svc || svc->count == 0)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	slot = (__u32)((cookie * 0x9E3779B97F4A7C15ULL) >> 32) % svc->count;
	if (slot >= LBS_MAX_BACKENDS)
		return 1;
	ctx->user_ip4 = svc->backends[slot];
	ctx->user_port = svc->target_port;
	return 1;
}

SEC("cgroup/connect4")
int lbs_connect4(struct bpf_sock_addr *ctx)
{
	return translate(ctx);
}

SEC("cgroup/sendmsg4")
int lbs_sendmsg4(struct bpf_sock_addr *ctx)
{
	return translate(ctx);
}

/* A UDP reply from backend:targetPort is shown to the application as coming from VIP:port. */
SEC("cgroup/recvmsg4")
int lbs_recvmsg4(struct bpf_sock_addr *ctx)
{
	struct lbs_addr key = { .ip = ctx->user_ip4, .port = ctx->user_port };
	struct lbs_addr *vip = bpf_map_lookup_elem(&lbs_reverse, &key);

	if (vip) {
		ctx->user_ip4 = vip->ip;
		ctx->user_port = vip->port;
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
