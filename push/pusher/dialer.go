package pusher

import (
	"net/http"
	"time"

	"myelin/netguard"
)

const (
	gatewayTimeout     = 30 * time.Second
	gatewayDialTimeout = 10 * time.Second
	// maxGatewayResponse bounds what a push gateway can make us read.
	maxGatewayResponse = 64 << 10
)

// gatewayClient is the HTTP client for push gateways. Anyone can set a pusher URL, so its
// dialer refuses loopback, private and link-local addresses after DNS resolution (netguard)
// unless push.allow_private_addresses allows them; otherwise a user could make the server
// probe the operator's own network. Redirects are not followed: a gateway has one URL, the
// one the pusher names.
func gatewayClient(allowPrivate bool) *http.Client {
	dialer := netguard.Dialer(gatewayDialTimeout, allowPrivate)
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
