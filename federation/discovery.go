package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Well-known caching bounds: the spec recommends 24 hours by default, at most 48 hours, and up to
// an hour for errors. The minimum keeps a "no-cache" answer from costing a request per call.
const (
	wellKnownDefaultTTL = 24 * time.Hour
	wellKnownMaxTTL     = 48 * time.Hour
	wellKnownMinTTL     = 5 * time.Minute
	wellKnownErrorTTL   = time.Hour
	wellKnownTimeout    = 10 * time.Second
	// wellKnownMaxBytes bounds the body: the document is one short string.
	wellKnownMaxBytes = 64 << 10
	defaultFedPort    = "8448"
)

// ErrNoFederation: the server name's SRV record says it offers no federation service.
var ErrNoFederation = errors.New("server does not offer federation")

// Destination is how to reach a server name: where to connect, which Host header to send, and
// which name its certificate must be valid for.
type Destination struct {
	// Addrs are host:port pairs to try in order. The host may be a DNS name, which the dialer
	// resolves (CNAME, AAAA, A).
	Addrs []string
	// Host is the Host header of requests.
	Host string
	// TLSName is what the certificate must be valid for: a DNS name, or an IP literal (then no
	// SNI is sent, as the spec asks).
	TLSName string
}

// A Resolver finds the Destination of a server name.
type Resolver interface {
	Resolve(ctx context.Context, serverName string) (Destination, error)
}

// SRVResolver looks up SRV records; *net.Resolver is one.
type SRVResolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Discovery resolves server names as server-server-api.md "Resolving server names" describes:
// IP literal, explicit port, /.well-known/matrix/server (cached), SRV _matrix-fed._tcp then the
// deprecated _matrix._tcp, then port 8448.
type Discovery struct {
	dns       SRVResolver
	wellKnown *http.Client
	static    map[string]string
	now       func() time.Time

	mu    sync.Mutex
	cache map[string]wellKnownEntry
}

// wellKnownEntry is a cached /.well-known answer: the delegated server name, or "" after an
// error or an invalid answer.
type wellKnownEntry struct {
	delegated string
	expires   time.Time
}

// DiscoveryOptions configure a Discovery; every field is optional.
type DiscoveryOptions struct {
	// DNS looks up SRV records; default net.DefaultResolver.
	DNS SRVResolver
	// WellKnownClient fetches https://<host>/.well-known/matrix/server; default a client with the
	// system roots. It should verify certificates; redirects are followed (at most 10).
	WellKnownClient *http.Client
	// StaticHosts maps server names to a host:port to connect to instead of discovering one, like
	// /etc/hosts for federation: the Host header and certificate name stay the server name's.
	StaticHosts map[string]string
}

// NewDiscovery returns a resolver with an empty cache.
func NewDiscovery(opts DiscoveryOptions) *Discovery {
	d := &Discovery{dns: opts.DNS, wellKnown: opts.WellKnownClient, static: opts.StaticHosts,
		now: time.Now, cache: map[string]wellKnownEntry{}}
	if d.dns == nil {
		d.dns = net.DefaultResolver
	}
	if d.wellKnown == nil {
		d.wellKnown = &http.Client{Timeout: wellKnownTimeout}
	}
	return d
}

var _ Resolver = (*Discovery)(nil)

// Resolve returns where to send requests for serverName.
func (d *Discovery) Resolve(ctx context.Context, serverName string) (Destination, error) {
	host, port, err := splitServerName(serverName)
	if err != nil {
		return Destination{}, err
	}
	if addr, ok := d.static[serverName]; ok {
		return Destination{Addrs: []string{addr}, Host: serverName, TLSName: host}, nil
	}
	// Step 1: an IP literal, with its port or 8448.
	if ip := net.ParseIP(host); ip != nil {
		return Destination{Addrs: []string{net.JoinHostPort(host, orDefault(port))}, Host: serverName, TLSName: host}, nil
	}
	// Step 2: an explicit port.
	if port != "" {
		return Destination{Addrs: []string{net.JoinHostPort(host, port)}, Host: serverName, TLSName: host}, nil
	}
	// Step 3: delegation through /.well-known.
	if delegated := d.wellKnownServer(ctx, host); delegated != "" {
		dhost, dport, _ := splitServerName(delegated) // checked when cached
		switch {
		case net.ParseIP(dhost) != nil:
			return Destination{Addrs: []string{net.JoinHostPort(dhost, orDefault(dport))}, Host: delegated, TLSName: dhost}, nil
		case dport != "":
			return Destination{Addrs: []string{net.JoinHostPort(dhost, dport)}, Host: delegated, TLSName: dhost}, nil
		}
		return d.srvOrDefault(ctx, dhost)
	}
	// Steps 4 to 6: SRV records of the server name itself, then port 8448.
	return d.srvOrDefault(ctx, host)
}

// srvOrDefault looks up _matrix-fed._tcp, then the deprecated _matrix._tcp, then falls back to
// port 8448. The Host header and certificate are host's whatever the SRV target is.
func (d *Discovery) srvOrDefault(ctx context.Context, host string) (Destination, error) {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, records, err := d.dns.LookupSRV(ctx, service, "tcp", host)
		if err != nil || len(records) == 0 {
			// Not found and lookup failures alike fall through to the next step, as a missing
			// record is by far the common case and the last step still works without DNS SRV.
			continue
		}
		var addrs []string
		for _, r := range records {
			target := strings.TrimSuffix(r.Target, ".")
			if target == "" {
				continue // RFC 2782: "." means the service is decidedly not available
			}
			addrs = append(addrs, net.JoinHostPort(target, strconv.Itoa(int(r.Port))))
		}
		if len(addrs) == 0 {
			return Destination{}, fmt.Errorf("%w: %s", ErrNoFederation, host)
		}
		return Destination{Addrs: addrs, Host: host, TLSName: host}, nil
	}
	return Destination{Addrs: []string{net.JoinHostPort(host, defaultFedPort)}, Host: host, TLSName: host}, nil
}

// wellKnownServer returns the m.server delegation of host, or "" when there is none (or it could
// not be fetched), from the cache when it is fresh.
func (d *Discovery) wellKnownServer(ctx context.Context, host string) string {
	now := d.now()
	d.mu.Lock()
	e, ok := d.cache[host]
	d.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.delegated
	}
	delegated, ttl := d.fetchWellKnown(ctx, host)
	if ctx.Err() != nil {
		return delegated // our caller gave up; do not cache its failure for an hour
	}
	d.mu.Lock()
	d.cache[host] = wellKnownEntry{delegated: delegated, expires: now.Add(ttl)}
	d.mu.Unlock()
	return delegated
}

// fetchWellKnown fetches and validates the well-known document of host, returning the delegated
// server name ("" when invalid) and how long to cache the answer.
func (d *Discovery) fetchWellKnown(ctx context.Context, host string) (string, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wellKnownTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/matrix/server", nil)
	if err != nil {
		return "", wellKnownErrorTTL
	}
	resp, err := d.wellKnown.Do(req)
	if err != nil {
		return "", wellKnownErrorTTL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, wellKnownMaxBytes+1))
	if err != nil || resp.StatusCode != http.StatusOK || len(body) > wellKnownMaxBytes {
		return "", wellKnownErrorTTL
	}
	// The spec says to parse the body as JSON whatever its Content-Type.
	var doc struct {
		Server any `json:"m.server"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", wellKnownErrorTTL
	}
	delegated, ok := doc.Server.(string)
	if !ok {
		return "", wellKnownErrorTTL
	}
	if _, _, err := splitServerName(delegated); err != nil {
		return "", wellKnownErrorTTL
	}
	return delegated, cacheTTL(resp.Header, d.now())
}

// cacheTTL reads Cache-Control max-age (or Expires) within the well-known bounds.
func cacheTTL(h http.Header, now time.Time) time.Duration {
	ttl := wellKnownDefaultTTL
	found := false
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return wellKnownMinTTL
		case "max-age":
			if secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && secs >= 0 {
				ttl, found = time.Duration(min(secs, int64(wellKnownMaxTTL/time.Second)))*time.Second, true
			}
		}
	}
	if !found {
		if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
			ttl = exp.Sub(now)
		}
	}
	return min(max(ttl, wellKnownMinTTL), wellKnownMaxTTL)
}

// splitServerName splits a server name into host and port ("" if none), checking the grammar of
// the appendix loosely: a bracketed IPv6 literal, an IPv4 literal or a DNS name, and a port.
func splitServerName(name string) (host, port string, err error) {
	bad := fmt.Errorf("invalid server name %q", name)
	if name == "" || len(name) > 255 {
		return "", "", bad
	}
	if strings.HasPrefix(name, "[") {
		end := strings.IndexByte(name, ']')
		if end < 0 {
			return "", "", bad
		}
		host, rest := name[1:end], name[end+1:]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", "", bad
		}
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok || !validPort(p) {
				return "", "", bad
			}
			port = p
		}
		return host, port, nil
	}
	host = name
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		host, port = name[:i], name[i+1:]
		if !validPort(port) {
			return "", "", bad
		}
	}
	if host == "" {
		return "", "", bad
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", "", bad
		}
	}
	return host, port, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535 && len(p) <= 5
}

func orDefault(port string) string {
	if port == "" {
		return defaultFedPort
	}
	return port
}
