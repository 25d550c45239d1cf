"""IPsec between nodes: the node's XFRM states and policies made what its plan says (`apply`),
over a small NETLINK_XFRM client (`xfrm`), and what they report (`status`)."""
