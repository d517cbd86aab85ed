package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"myelin/keys"
	"myelin/netguard"
)

const (
	defaultRequestTimeout = 60 * time.Second
	// defaultMaxResponseBytes bounds what a remote server can make us read: room state of a large
	// room is tens of megabytes at most.
	defaultMaxResponseBytes = 100 << 20
	dialTimeout             = 15 * time.Second
)

// RemoteError is an error answer from another server: its HTTP status and, when the body was a
// Matrix error, its errcode and message.
type RemoteError struct {
	Destination string
	Status      int
	Code        string // empty when the body was not a Matrix error
	Message     string
}

func (e *RemoteError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s answered HTTP %d", e.Destination, e.Status)
	}
	return fmt.Sprintf("%s answered HTTP %d %s: %s", e.Destination, e.Status, e.Code, e.Message)
}

// Client makes signed requests to other servers. TLS is always verified, against the system
// roots and the configured CA files; there is no way to switch that off.
type Client struct {
	serverName  string
	key         keys.SigningKey
	resolver    Resolver
	tlsConfig   *tls.Config
	timeout     time.Duration
	maxResponse int64
	http        *http.Client
	// allowPrivate lets connections go to loopback, private and link-local addresses.
	allowPrivate bool

	mu         sync.Mutex
	transports map[string]*http.Transport
}

// A ClientOption adjusts a Client.
type ClientOption func(*Client)

// WithResolver replaces server discovery, for tests that send "hs1.test" to a loopback port.
func WithResolver(r Resolver) ClientOption { return func(c *Client) { c.resolver = r } }

// WithStaticHosts sends the named servers to fixed host:port addresses (see
// DiscoveryOptions.StaticHosts); it has no effect together with WithResolver.
func WithStaticHosts(hosts map[string]string) ClientOption {
	return func(c *Client) {
		if d, ok := c.resolver.(*Discovery); ok {
			d.static = hosts
		}
	}
}

// ErrPrivateAddress: an outbound connection would go to a loopback, private or link-local
// address, which is refused unless WithPrivateAddresses allows it. It is netguard's, so
// errors.Is matches whichever of the two a caller names.
var ErrPrivateAddress = netguard.ErrPrivateAddress

// WithPrivateAddresses allows (or, by default, refuses) outbound connections to loopback,
// private and link-local addresses (federation.allow_private_addresses); netguard lists the
// refused ranges.
func WithPrivateAddresses(allow bool) ClientOption {
	return func(c *Client) { c.allowPrivate = allow }
}

// checkDialAddress is the dialers' Control hook: it sees the address after DNS resolution, so
// a name that resolves to a private address is refused like the address itself. It reads
// allowPrivate when called, because the well-known client's dialer is built before the
// options are applied.
func (c *Client) checkDialAddress(_, address string, _ syscall.RawConn) error {
	if c.allowPrivate {
		return nil
	}
	return netguard.CheckAddress(address)
}

// WithTimeout bounds each request (default one minute) when its context has no earlier deadline.
func WithTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// NewClient returns a client that signs requests as serverName with key and trusts the system
// roots plus the CA certificates in trustedCAFiles (PEM).
func NewClient(serverName string, key keys.SigningKey, trustedCAFiles []string, opts ...ClientOption) (*Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range trustedCAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading trusted CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trusted CA file %s holds no PEM certificate", f)
		}
	}
	c := &Client{
		serverName:  serverName,
		key:         key,
		tlsConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		timeout:     defaultRequestTimeout,
		maxResponse: defaultMaxResponseBytes,
		transports:  map[string]*http.Transport{},
	}
	c.resolver = NewDiscovery(DiscoveryOptions{WellKnownClient: &http.Client{
		Timeout: wellKnownTimeout,
		Transport: &http.Transport{TLSClientConfig: c.tlsConfig.Clone(), Proxy: nil,
			DialContext: (&net.Dialer{Timeout: dialTimeout, Control: c.checkDialAddress}).DialContext},
	}})
	for _, o := range opts {
		o(c)
	}
	c.http = &http.Client{
		Transport: roundTripperFunc(c.roundTrip),
		// Federation endpoints do not redirect; following one would send a signed request to a
		// destination it was not signed for.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends the request through the transport of its destination (the URL host is the
// server name), so that a connection verified for one server is never reused for another that
// happens to share its address.
func (c *Client) roundTrip(r *http.Request) (*http.Response, error) {
	return c.transportFor(r.URL.Host).RoundTrip(r)
}

func (c *Client) transportFor(serverName string) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.transports[serverName]; ok {
		return t
	}
	t := &http.Transport{
		Proxy: nil,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dialTLS(ctx, serverName)
		},
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: c.timeout,
	}
	c.transports[serverName] = t
	return t
}

// dialTLS connects to the first reachable address of serverName and verifies its certificate
// for the name discovery says it must have.
func (c *Client) dialTLS(ctx context.Context, serverName string) (net.Conn, error) {
	dest, err := c.resolver.Resolve(ctx, serverName)
	if err != nil {
		return nil, err
	}
	cfg := c.tlsConfig.Clone()
	cfg.ServerName = dest.TLSName
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout, Control: c.checkDialAddress}, Config: cfg}
	var errs []error
	for _, addr := range dest.Addrs {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("connecting to %s: %w", serverName, errors.Join(errs...))
}

// Do sends a signed request to destination and decodes a JSON answer into out (unless out is
// nil). uri is the path and query, starting with /_matrix/. A non-nil body is sent as JSON: a
// []byte or json.RawMessage as is, anything else marshalled. An error answer is a *RemoteError.
func (c *Client) Do(ctx context.Context, destination, method, uri string, body, out any) error {
	var content []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		content = b
	case json.RawMessage:
		content = b
	default:
		var err error
		if content, err = json.Marshal(b); err != nil {
			return fmt.Errorf("encoding request to %s: %w", destination, err)
		}
	}
	raw, err := c.DoRaw(ctx, destination, method, uri, content)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding answer of %s: %w", destination, err)
	}
	return nil
}

// DoRaw is Do with the body as bytes in and out.
func (c *Client) DoRaw(ctx context.Context, destination, method, uri string, content []byte) ([]byte, error) {
	if _, _, err := splitServerName(destination); err != nil {
		return nil, err
	}
	dest, err := c.resolver.Resolve(ctx, destination)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", destination, err)
	}
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var reqBody io.Reader
	if content != nil {
		reqBody = bytes.NewReader(content)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+destination+uri, reqBody)
	if err != nil {
		return nil, fmt.Errorf("request to %s: %w", destination, err)
	}
	req.Host = dest.Host
	// Sign the target as it goes on the request line, after URL parsing has had its say.
	x, err := SignRequest(c.serverName, destination, c.key, method, req.URL.RequestURI(), content)
	if err != nil {
		return nil, fmt.Errorf("signing request to %s: %w", destination, err)
	}
	req.Header.Set("Authorization", x.String())
	req.Header.Set("Accept", "application/json")
	if content != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading answer of %s: %w", destination, err)
	}
	if int64(len(raw)) > c.maxResponse {
		return nil, fmt.Errorf("answer of %s exceeds %d bytes", destination, c.maxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &RemoteError{Destination: destination, Status: resp.StatusCode}
		var m struct {
			Code    string `json:"errcode"`
			Message string `json:"error"`
		}
		if json.Unmarshal(raw, &m) == nil {
			e.Code, e.Message = m.Code, m.Message
		}
		return nil, e
	}
	return raw, nil
}
