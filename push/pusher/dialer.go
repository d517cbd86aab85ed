package pusher

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress: a delivery would connect to a loopback, private or link-local address,
// which is refused unless push.allow_private_addresses allows it. Anyone can set a pusher
// URL, so without this rule a user could make the server probe the operator's own network.
var ErrPrivateAddress = errors.New("pusher: refusing to connect to a private address")

const (
	gatewayTimeout     = 30 * time.Second
	gatewayDialTimeout = 10 * time.Second
	// maxGatewayResponse bounds what a push gateway can make us read.
	maxGatewayResponse = 64 << 10
)

// gatewayClient is the HTTP client for push gateways. Its dialer checks the address after DNS
// resolution (federation/client.go does the same for federation), and redirects are not
// followed: a gateway has one URL, the one the pusher names.
func gatewayClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{
		Timeout: gatewayDialTimeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			if allowPrivate {
				return nil
			}
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: %q is not an IP address", ErrPrivateAddress, host)
			}
			if isPrivateAddr(ip) {
				return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: gatewayTimeout,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: gatewayDialTimeout,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// isPrivateAddr: loopback, RFC 1918 / RFC 4193 private, link-local, unspecified, and
// IPv4-mapped forms of those.
func isPrivateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() ||
		(ip.Is4() && ip.As4()[0] == 0)
}
