package daemon

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hostAllowList answers which Host headers the HTTP server serves. It is
// the defence against DNS rebinding: a web page at http://evil.example:9091
// whose name the attacker re-points at 127.0.0.1 reaches the daemon from
// the victim's browser as a same-origin request, so the Origin check
// passes; but its Host header still says evil.example. Served are:
//   - an IP address literal (any: a page whose origin is an address is the
//     daemon itself, since rebinding needs a name), which covers loopback
//     and the address the daemon listens on;
//   - localhost (which browsers resolve to loopback themselves);
//   - the host name of Config.RPCAddr, if it is a name;
//   - the names in Config.RPCHosts (sower daemon --rpc-host NAME).
//
// Names match without regard to case or a final dot. Anything else gets
// 421 Misdirected Request before any handler (RPC, API, web UI, metrics)
// or the password check runs, as Transmission's rpc-host-whitelist does
// since CVE-2018-5702.
type hostAllowList map[string]bool

func newHostAllowList(rpcAddr string, extra []string) hostAllowList {
	l := hostAllowList{"localhost": true}
	if h, _, err := net.SplitHostPort(rpcAddr); err == nil && h != "" {
		l[normalHost(h)] = true
	}
	for _, h := range extra {
		l[normalHost(h)] = true
	}
	return l
}

func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// allows reports whether a request's Host header (host[:port]) is served.
// An absent Host (HTTP/1.0) names nothing an attacker could re-point.
func (l hostAllowList) allows(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return l[normalHost(host)]
}

// checkHost refuses requests whose Host is not on the allow-list.
func (d *Daemon) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.hosts.allows(r.Host) {
			http.Error(w, "421: this daemon does not answer to that host name; an operator who wants it adds it with sower daemon --rpc-host NAME", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
