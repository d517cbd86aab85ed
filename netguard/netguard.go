// Package netguard keeps the server's outbound connections away from the operator's own
// network. Federation, remote media, URL previews and push gateways all connect to addresses
// that someone else chose (a server name, a URL in an event, a pusher URL anyone can set);
// without a guard, a user or a remote server could make this server probe or reach services
// that only listen on loopback or on a private network.
//
// The check runs in the dialer's Control hook, after DNS resolution, on every connection a
// client makes (redirects included), so a name that resolves to a private address is refused
// like the address itself and a DNS answer that changes between check and connect cannot
// slip through.
//
// Refused ranges (the same list as Synapse's default ip_range_blacklist, plus the IPv6 forms
// that embed an IPv4 address):
//
//	0.0.0.0/8, ::/128           "this host" / unspecified (0.0.0.0 reaches this host on Linux)
//	127.0.0.0/8, ::1/128        loopback
//	10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16   RFC 1918 private
//	100.64.0.0/10               RFC 6598 carrier-grade NAT shared space (also used by VPN
//	                            overlays such as Tailscale for internal hosts)
//	169.254.0.0/16, fe80::/10   link-local (cloud metadata services live at 169.254.169.254)
//	fc00::/7                    RFC 4193 unique-local
//	fec0::/10                   deprecated site-local
//	192.0.0.0/24                IETF protocol assignments
//	192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32   documentation
//	192.88.99.0/24              deprecated 6to4 relay anycast
//	198.18.0.0/15               benchmarking (often used for lab networks)
//	224.0.0.0/4, ff00::/8       multicast (never a unicast destination)
//	240.0.0.0/4                 reserved, including the 255.255.255.255 broadcast
//	64:ff9b:1::/48              local-use IPv4/IPv6 translation
//
// IPv6 addresses that carry an IPv4 address are judged by that IPv4 address: IPv4-mapped
// (::ffff:a.b.c.d), the deprecated IPv4-compatible form (::a.b.c.d), NAT64 (64:ff9b::/96) and
// 6to4 (2002::/16). Anything else, global unicast, is allowed.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress is wrapped by the error of a refused connection.
var ErrPrivateAddress = errors.New("refusing to connect to a private address")

// privateV4 and privateV6 are the refused ranges (see the package comment).
var (
	privateV4 = prefixes(
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	)
	privateV6 = prefixes(
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
		"2001:db8::/32", "64:ff9b:1::/48",
	)
	// Ranges whose addresses embed an IPv4 address, and where it starts (byte offset).
	v4Compatible = netip.MustParsePrefix("::/96")
	nat64        = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// IsPrivate reports whether ip is in a refused range. The zone of an IPv6 address is ignored.
func IsPrivate(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return true
	}
	if ip.Is4() {
		return inAny(privateV4, ip)
	}
	if inAny(privateV6, ip) {
		return true
	}
	b := ip.As16()
	switch {
	case v4Compatible.Contains(ip), nat64.Contains(ip):
		return IsPrivate(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return IsPrivate(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return false
}

func inAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckAddress checks a dialled "host:port" whose host is an IP address, as a dialer's
// Control hook sees it. A host that is not an IP address is refused: after resolution there
// should be none.
func CheckAddress(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPrivateAddress, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrPrivateAddress, host)
	}
	if IsPrivate(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
	}
	return nil
}

// Control returns a net.Dialer Control function that refuses private addresses, or nil (no
// check) when allowPrivate is set, as tests on loopback and some operators need.
func Control(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	if allowPrivate {
		return nil
	}
	return func(_, address string, _ syscall.RawConn) error { return CheckAddress(address) }
}

// Dialer returns a dialer with timeout whose connections are checked by Control.
func Dialer(timeout time.Duration, allowPrivate bool) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: Control(allowPrivate)}
}
