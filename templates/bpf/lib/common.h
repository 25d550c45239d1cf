/* SPDX-License-Identifier: GPL-2.0 */
/* Part of netcc's hand-written datapath; copied verbatim into every build. */
#ifndef NETCC_COMMON_H
#define NETCC_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* The ICMP header and the types the datapath reads. Defined here rather than taken from
 * <linux/icmp.h>, which since Linux 6.1.1xx pulls in <linux/if.h> and with it glibc's
 * <sys/socket.h>, whose 32-bit stubs a BPF build cannot find. Layout as in RFC 792. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
		__u8 reserved[4];
	} un;
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define NS_PER_SEC 1000000000ULL

#endif /* NETCC_COMMON_H */
