//go:build linux

package wanlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NAT is the kind of NAT a host sits behind.
type NAT int

const (
	// NoNAT: the host holds its public address itself.
	NoNAT NAT = iota
	// FullCone maps the host's address and port to the same public port
	// for every destination and lets anyone reach a mapped port
	// (endpoint-independent mapping and filtering).
	FullCone
	// Symmetric maps every connection to a new random public port and
	// lets in only replies (address- and port-dependent mapping and
	// filtering).
	Symmetric
)

// String names the kind as scenarios print it.
func (n NAT) String() string {
	switch n {
	case NoNAT:
		return "none"
	case FullCone:
		return "full-cone"
	case Symmetric:
		return "symmetric"
	}
	return "nat(" + strconv.Itoa(int(n)) + ")"
}

// HostConfig describes one host.
type HostConfig struct {
	// Name is short, unique in the lab, letters, digits and '-' (it
	// names the namespace).
	Name string
	// Up shapes what the host sends, Down what it receives.
	Up, Down Link
	// NAT puts the host behind a NAT of this kind.
	NAT NAT
	// LAN also attaches the host to the lab's LAN segment.
	LAN bool
}

// Config configures a Lab.
type Config struct {
	// Prefix starts every namespace name, followed by the process id;
	// default "swan".
	Prefix string
	// Seed makes the random loss and jitter repeatable.
	Seed uint64
	// Logger gets the lab's own events; default slog.Default().
	Logger *slog.Logger
}

// Lab is one virtual internet. Its methods are safe for concurrent use.
type Lab struct {
	prefix string
	seed   uint64
	log    *slog.Logger
	core   *core
	stop   chan struct{}
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	hosts      map[string]*Host
	routes     map[netip.Addr]*port
	namespaces []string
	lanNS      string
	lanCount   int
	next       int
}

// Host is one machine of the lab.
type Host struct {
	lab  *Lab
	name string
	ns   string
	// addr is the public address; local the host's own (different
	// behind a NAT); lanAddr its LAN address, if any.
	addr, local, lanAddr netip.Addr
	nat                  NAT
	port                 *port
}

// port is one TUN device of the router.
type port struct {
	name     string
	tun      *os.File
	up, down *pipe
	unrouted int64 // guarded by core.mu
}

// write hands a packet to the host. A failed write (the host's queue is
// full, or the lab is closing) loses the packet, as a full NIC ring does.
func (p *port) write(b []byte) { _, _ = p.tun.Write(b) }

// nameRE is what host names may be.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// New starts an empty lab, after sweeping what killed labs with the same
// prefix left behind.
func New(ctx context.Context, cfg Config) (*Lab, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "swan"
	}
	if !regexp.MustCompile(`^[a-z]{1,8}$`).MatchString(cfg.Prefix) {
		return nil, fmt.Errorf("wanlab: prefix %q: want 1-8 lower-case letters", cfg.Prefix)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := Sweep(ctx, cfg.Prefix, cfg.Logger); err != nil {
		return nil, err
	}
	l := &Lab{
		prefix: cfg.Prefix + strconv.Itoa(os.Getpid()),
		seed:   cfg.Seed,
		log:    cfg.Logger,
		core:   newCore(),
		stop:   make(chan struct{}),
		hosts:  map[string]*Host{},
		routes: map[netip.Addr]*port{},
	}
	l.wg.Go(func() { l.core.run(l.stop) })
	return l, nil
}

// Sweep removes the namespaces of labs with this prefix whose process is
// gone (a lab killed before its Close).
func Sweep(ctx context.Context, prefix string, log *slog.Logger) error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wanlab: sweep: %w", err)
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `([0-9]+)-`)
	var errs []error
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // a running lab's
		}
		log.Info("wanlab: removing a stale namespace", "netns", e.Name())
		if err := deleteNetns(ctx, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteNetns kills what still runs in a namespace, then deletes it.
func deleteNetns(ctx context.Context, ns string) error {
	// Programs left in it would keep the namespace (and its devices)
	// alive after the name is gone.
	if out, err := output(ctx, "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := run(ctx, "", "ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("wanlab: %w", err)
	}
	return nil
}

// addNetns creates a namespace with its loopback up and IPv6 off (the lab
// is IPv4).
func (l *Lab) addNetns(ctx context.Context, ns string) error {
	if err := run(ctx, "", "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("wanlab: %w", err)
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	if err := ipBatch(ctx, ns, "link set lo up"); err != nil {
		return fmt.Errorf("wanlab: %w", err)
	}
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := sysctl(ns, k, "1"); err != nil {
			return fmt.Errorf("wanlab: %w", err)
		}
	}
	return nil
}

// publicAddr is the nth public address (from 1): 10.77.0.1, 10.77.0.2,
// ... in 10.77.0.0/16, skipping .0 and .251-.255 in each /24.
func publicAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte((n - 1) / 250), byte((n-1)%250 + 1)})
}

// AddHost creates a host and links it to the router.
func (l *Lab) AddHost(ctx context.Context, hc HostConfig) (*Host, error) {
	if !nameRE.MatchString(hc.Name) {
		return nil, fmt.Errorf("wanlab: host name %q: want up to 31 of a-z, 0-9, '-'", hc.Name)
	}
	for _, lk := range []Link{hc.Up, hc.Down} {
		if lk.Rate < 0 || lk.Delay < 0 || lk.Jitter < 0 || lk.Jitter > lk.Delay || lk.Loss < 0 || lk.Loss >= 1 || lk.Queue < 0 {
			return nil, fmt.Errorf("wanlab: host %s: bad link %+v (negative, jitter above delay, or loss outside [0,1))", hc.Name, lk)
		}
	}
	if hc.NAT < NoNAT || hc.NAT > Symmetric {
		return nil, fmt.Errorf("wanlab: host %s: unknown NAT kind %d", hc.Name, hc.NAT)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("wanlab: lab closed")
	}
	if _, dup := l.hosts[hc.Name]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("wanlab: host %s exists", hc.Name)
	}
	h := &Host{lab: l, name: hc.Name, ns: l.prefix + "-" + hc.Name, nat: hc.NAT}
	l.hosts[hc.Name] = h
	l.next++
	n := l.next
	l.mu.Unlock()
	if n > 250*250 {
		return nil, errors.New("wanlab: no public addresses left")
	}
	h.addr = publicAddr(n)
	h.local = h.addr

	if err := l.addNetns(ctx, h.ns); err != nil {
		return nil, err
	}
	wanNS := h.ns
	if hc.NAT != NoNAT {
		wanNS = h.ns + "-nat"
		if err := l.addNetns(ctx, wanNS); err != nil {
			return nil, err
		}
	}
	tun, err := openTUN(wanNS, "wan0")
	if err != nil {
		return nil, fmt.Errorf("wanlab: host %s: %w", hc.Name, err)
	}
	err = ipBatch(ctx, wanNS,
		// A long queue in front of the router: when this process is
		// late to read, packets wait rather than vanish.
		"link set wan0 mtu 1500 txqueuelen 20000 up",
		"addr add "+h.addr.String()+"/16 dev wan0",
		"route add default dev wan0")
	if err != nil {
		tun.Close()
		return nil, fmt.Errorf("wanlab: host %s: %w", hc.Name, err)
	}
	p := &port{name: hc.Name, tun: tun,
		up:   newPipe(hc.Up, l.seed, uint64(2*n)),
		down: newPipe(hc.Down, l.seed, uint64(2*n+1))}
	h.port = p
	if hc.NAT != NoNAT {
		if err := l.natHost(ctx, h, wanNS); err != nil {
			tun.Close()
			return nil, err
		}
	}
	if hc.LAN {
		if err := l.joinLAN(ctx, h); err != nil {
			tun.Close()
			return nil, err
		}
	}
	l.mu.Lock()
	l.routes[h.addr] = p
	l.mu.Unlock()
	l.wg.Go(func() { l.readLoop(p) })
	l.log.Debug("wanlab: host", "name", hc.Name, "addr", h.addr, "nat", hc.NAT, "up", hc.Up, "down", hc.Down)
	return h, nil
}

// natHost puts h behind a NAT namespace: h gets 192.168.1.2 on eth0 with
// the NAT's 192.168.1.1 as its gateway, and the NAT masquerades behind
// h's public address on wan0.
func (l *Lab) natHost(ctx context.Context, h *Host, natNS string) error {
	h.local = netip.MustParseAddr("192.168.1.2")
	err := ipBatch(ctx, natNS,
		"link add lan0 type veth peer name eth0 netns "+h.ns,
		"addr add 192.168.1.1/24 dev lan0",
		"link set lan0 up")
	if err == nil {
		err = ipBatch(ctx, h.ns,
			"addr add 192.168.1.2/24 dev eth0",
			"link set eth0 up",
			"route add default via 192.168.1.1")
	}
	if err == nil {
		err = sysctl(natNS, "net.ipv4.ip_forward", "1")
	}
	if err == nil {
		err = run(ctx, natRules(h.nat), "ip", "netns", "exec", natNS, "nft", "-f", "-")
	}
	if err != nil {
		return fmt.Errorf("wanlab: host %s: NAT: %w", h.name, err)
	}
	return nil
}

// natRules are the nftables rules of a NAT of the given kind. Linux
// masquerade keeps a flow's source port when it can, so without
// "fully-random" a host's port maps to the same public port for every
// destination; the full-cone NAT then lets any outside host reach a port
// the host has sent from (the set remembers it for two minutes, like a
// UDP mapping's timeout), and the symmetric NAT draws a new port per
// flow and lets only replies in (conntrack).
func natRules(kind NAT) string {
	switch kind {
	case FullCone:
		return `table ip wanlab {
	set mapped {
		type inet_proto . inet_service
		flags timeout
		timeout 2m
		size 65535
	}
	chain flows {
		type filter hook forward priority 0;
		oifname "wan0" update @mapped { meta l4proto . th sport timeout 2m }
	}
	chain dnat_in {
		type nat hook prerouting priority dstnat;
		iifname "wan0" meta l4proto . th dport @mapped dnat to 192.168.1.2
	}
	chain snat_out {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade
	}
}
`
	default:
		return `table ip wanlab {
	chain snat_out {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade fully-random
	}
}
`
	}
}

// joinLAN attaches h to the LAN bridge (created with the first member):
// h gets 192.168.77.N/24 on lan0 and a multicast route through it.
func (l *Lab) joinLAN(ctx context.Context, h *Host) error {
	l.mu.Lock()
	first := l.lanNS == ""
	if first {
		l.lanNS = l.prefix + "-lan"
	}
	l.lanCount++
	n, lanNS := l.lanCount, l.lanNS
	l.mu.Unlock()
	if n > 250 {
		return fmt.Errorf("wanlab: host %s: the LAN is full", h.name)
	}
	if first {
		if err := l.addNetns(ctx, lanNS); err != nil {
			return err
		}
		// Snooping off: the bridge floods multicast to every member, as
		// a plain switch does.
		if err := ipBatch(ctx, lanNS, "link add br0 type bridge mcast_snooping 0", "link set br0 up"); err != nil {
			return fmt.Errorf("wanlab: LAN: %w", err)
		}
	}
	h.lanAddr = netip.AddrFrom4([4]byte{192, 168, 77, byte(n + 1)})
	peer := "p" + strconv.Itoa(n)
	err := ipBatch(ctx, h.ns, "link add lan0 type veth peer name "+peer+" netns "+lanNS,
		"addr add "+h.lanAddr.String()+"/24 dev lan0",
		"link set lan0 up",
		"route add 224.0.0.0/4 dev lan0")
	if err == nil {
		err = ipBatch(ctx, lanNS, "link set "+peer+" master br0", "link set "+peer+" up")
	}
	if err != nil {
		return fmt.Errorf("wanlab: host %s: LAN: %w", h.name, err)
	}
	return nil
}

// readLoop routes every packet host p sends until its TUN is closed.
func (l *Lab) readLoop(p *port) {
	c := l.core
	for {
		pkt := c.pool.Get().(*packet)
		n, err := p.tun.Read(pkt.buf)
		if err != nil {
			c.pool.Put(pkt)
			return
		}
		pkt.n = n
		// IPv4 only; the destination is bytes 16-19 of the header.
		if n < 20 || pkt.buf[0]>>4 != 4 {
			c.pool.Put(pkt)
			continue
		}
		dst := netip.AddrFrom4([4]byte(pkt.buf[16:20]))
		l.mu.Lock()
		to := l.routes[dst]
		l.mu.Unlock()
		c.mu.Lock()
		if to == nil {
			p.unrouted++
			c.mu.Unlock()
			c.pool.Put(pkt)
			continue
		}
		if at, ok := p.up.admit(c.now(), n); ok {
			c.push(event{at: at, pkt: pkt, from: p, to: to})
		} else {
			c.pool.Put(pkt)
		}
		c.mu.Unlock()
	}
}

// Close stops the router and deletes every namespace of the lab, killing
// what still runs in them. Callers stop their own programs first.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	hosts := l.hosts
	namespaces := l.namespaces
	l.mu.Unlock()
	for _, h := range hosts {
		if h.port != nil {
			h.port.tun.Close()
		}
	}
	close(l.stop)
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for i := len(namespaces) - 1; i >= 0; i-- {
		if err := deleteNetns(ctx, namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Host returns the named host, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hosts[name]
}

// Namespace returns the name of the lab's namespace for host (as `ip netns
// exec` takes it).
func (l *Lab) Namespace(host string) string { return l.prefix + "-" + host }

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Namespace is the name of the host's network namespace.
func (h *Host) Namespace() string { return h.ns }

// Addr is the host's public address: others reach it (or its NAT) there.
func (h *Host) Addr() netip.Addr { return h.addr }

// LocalAddr is the address the host itself holds: its public address, or
// its private one behind a NAT.
func (h *Host) LocalAddr() netip.Addr { return h.local }

// LANAddr is the host's address on the LAN segment, or the zero Addr.
func (h *Host) LANAddr() netip.Addr { return h.lanAddr }

// NAT is the kind of NAT the host is behind.
func (h *Host) NAT() NAT { return h.nat }

// Counters returns what the host's uplink and downlink have carried and
// dropped so far.
func (h *Host) Counters() (up, down Counters) {
	c := h.lab.core
	c.mu.Lock()
	defer c.mu.Unlock()
	return h.port.up.c, h.port.down.c
}

// BytesTo returns how many bytes (IP packets) from h to other have passed
// both links so far (as Counters count them).
func (h *Host) BytesTo(other *Host) int64 {
	c := h.lab.core
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pairs[[2]*port{h.port, other.port}]
}

// Lateness returns how late, on average and at worst, the router has
// written packets compared with when their links delivered them: the
// lab's own timing error. It grows when the machine is too busy for the
// traffic (the scheduler and the TUN writes wait for a CPU).
func (l *Lab) Lateness() (mean, worst time.Duration) {
	c := l.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written == 0 {
		return 0, 0
	}
	return c.late / time.Duration(c.written), c.lateMax
}

// KernelDrops returns how many packets the host's kernel dropped on
// their way to the router (its wan0 queue overflowed because the router
// read too late): losses the lab adds on its own, which a run should
// report.
func (h *Host) KernelDrops(ctx context.Context) (int64, error) {
	ns := h.ns
	if h.nat != NoNAT {
		ns += "-nat"
	}
	out, err := output(ctx, "ip", "-n", ns, "-j", "-s", "link", "show", "wan0")
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats struct {
			TX struct {
				Dropped int64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("wanlab: %s: reading wan0's counters: %v", h.name, err)
	}
	return links[0].Stats.TX.Dropped, nil
}

// SetLinks changes the host's links from now on (packets already in
// flight keep their times).
func (h *Host) SetLinks(up, down Link) {
	c := h.lab.core
	c.mu.Lock()
	defer c.mu.Unlock()
	h.port.up.set(up)
	h.port.down.set(down)
}
