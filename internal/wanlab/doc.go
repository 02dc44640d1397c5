// Package wanlab builds a small virtual internet on one Linux machine, so
// real BitTorrent programs can be measured over delay, loss, asymmetric
// bandwidth and NAT instead of loopback.
//
// Every host is a network namespace with its own kernel TCP/UDP stack and
// one TUN device, wan0, whose other end is a router in this process. The
// router reads each IP packet a host sends, passes it through the
// sender's uplink and then the receiver's downlink (each a Link: rate,
// queue, delay with jitter, random loss) and writes it into the
// receiver's TUN device. The kernel's netem is not needed; this works
// for TCP, UDP and ICMP alike.
//
// A host may sit behind a NAT: a namespace of its own running nftables
// masquerade (full-cone or symmetric) between the host's private network
// and the router. Hosts may also share a LAN: a bridge, where multicast
// reaches every member.
//
// Everything the lab creates lives in namespaces named after its prefix
// and the process id (swan1234-seed, ...). Close removes them; a lab
// killed before it could do so is swept by the next one (see Sweep).
// Addresses are private (10.77.0.0/16 for the public side, 192.168.x.0/24
// behind NATs and on the LAN) and no route leads out of the lab.
//
// The lab runs on Linux only, as root (see Supported).
package wanlab
