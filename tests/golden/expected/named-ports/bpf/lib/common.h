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
#include <linux/icmp.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define NS_PER_SEC 1000000000ULL

#endif /* NETCC_COMMON_H */
