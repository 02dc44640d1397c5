// Package utp implements the uTorrent transport protocol (BEP 29): reliable,
// ordered byte streams over UDP with delay-based congestion control
// (LEDBAT), so that bulk BitTorrent transfers yield to the user's other
// traffic.
//
// A Socket multiplexes every uTP connection of one UDP socket. It does not
// own that socket: its owner reads the datagrams, hands those that look
// like uTP (see IsPacket) to Socket.HandlePacket and passes the rest (the
// DHT's bencoded KRPC, which starts with 'd') elsewhere, and the Socket
// sends through the owner's Transport. Serve is that read loop for an
// owner that wants it; Listen opens a UDP socket and serves it alone.
//
// Connections are net.Conns; a Socket is a net.Listener. Each connection
// keeps bounded state: a send buffer, a receive buffer (whose free space is
// the window advertised to the peer) and the packets in flight. The Socket
// itself keeps no state for packets of unknown connections (it answers each
// with at most one RESET, never larger than the packet) and caps the
// connections that are half open.
//
// Packet sizes follow the path: a connection starts at a size every IPv6
// path carries and probes larger sizes (padded probes, so that a lost
// probe's data is resent at the proven size), up to the link's MTU and the
// largest datagram the peer says it reads. Peers that do not say (other
// implementations) get at most an Ethernet-sized datagram.
package utp
