package federation

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS answers SRV lookups from a table keyed by "_service._proto.name".
type fakeDNS map[string][]*net.SRV

func (f fakeDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := fmt.Sprintf("_%s._%s.%s", service, proto, name)
	if rs, ok := f[key]; ok {
		return key, rs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

// wellKnownServer serves /.well-known/matrix/server for several host names over TLS with a
// certificate valid for all of them, and returns a client that reaches it for any host name.
func wellKnownServer(t *testing.T, ca *testCA, names []string, h http.HandlerFunc) *http.Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, names...)}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

func TestDiscovery(t *testing.T) {
	ca := newTestCA(t)
	wellKnown := map[string]string{
		"wk-ip.test":          `{"m.server": "1.2.3.4"}`,
		"wk-ip-port.test":     `{"m.server": "[2001:db8::1]:1234"}`,
		"wk-port.test":        `{"m.server": "delegated.test:4321"}`,
		"wk-srv.test":         `{"m.server": "delegated-srv.test"}`,
		"wk-oldsrv.test":      `{"m.server": "delegated-oldsrv.test"}`,
		"wk-plain.test":       `{"m.server": "delegated-plain.test"}`,
		"wk-badjson.test":     `{"m.server": `,
		"wk-badname.test":     `{"m.server": "not a name!"}`,
		"wk-notstring.test":   `{"m.server": 1234}`,
		"wk-missing.test":     `{"m.homeserver": "x.test"}`,
		"wk-texthtml.test":    `{"m.server": "html.test:443"}`,
		"wk-redirect.test":    "",
		"wk-redirected.test":  `{"m.server": "after-redirect.test:8000"}`,
		"wk-404.test":         "",
		"wk-srv-itself.test":  "",
		"wk-nofed.test":       "",
		"wk-oldsrv-self.test": "",
	}
	var names []string
	for n := range wellKnown {
		names = append(names, n)
	}
	client := wellKnownServer(t, ca, names, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, r)
			return
		}
		switch r.Host {
		case "wk-redirect.test":
			http.Redirect(w, r, "https://wk-redirected.test/.well-known/matrix/server", http.StatusFound)
			return
		case "wk-texthtml.test":
			w.Header().Set("Content-Type", "text/html") // still parsed as JSON, as the spec asks
		}
		body := wellKnown[r.Host]
		if body == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	})
	dns := fakeDNS{
		"_matrix-fed._tcp.delegated-srv.test":   {{Target: "target.test.", Port: 7000, Priority: 10}, {Target: "backup.test.", Port: 7001, Priority: 20}},
		"_matrix._tcp.delegated-srv.test":       {{Target: "wrong.test.", Port: 1}},
		"_matrix._tcp.delegated-oldsrv.test":    {{Target: "old-target.test.", Port: 7002}},
		"_matrix-fed._tcp.wk-srv-itself.test":   {{Target: "self-target.test.", Port: 7003}},
		"_matrix._tcp.wk-oldsrv-self.test":      {{Target: "self-old.test.", Port: 7004}},
		"_matrix-fed._tcp.wk-nofed.test":        {{Target: ".", Port: 0}},
		"_matrix-fed._tcp.explicit-port.test":   {{Target: "never.test.", Port: 1}},
		"_matrix-fed._tcp.delegated-plain.test": nil,
	}
	d := NewDiscovery(DiscoveryOptions{DNS: dns, WellKnownClient: client,
		StaticHosts: map[string]string{"static.test": "127.0.0.1:5555"}})

	cases := []struct {
		name   string
		server string
		want   Destination
		err    error
	}{
		{"1: IPv4 literal", "1.2.3.4", Destination{[]string{"1.2.3.4:8448"}, "1.2.3.4", "1.2.3.4"}, nil},
		{"1: IPv4 literal with port", "1.2.3.4:99", Destination{[]string{"1.2.3.4:99"}, "1.2.3.4:99", "1.2.3.4"}, nil},
		{"1: IPv6 literal", "[2001:db8::1]", Destination{[]string{"[2001:db8::1]:8448"}, "[2001:db8::1]", "2001:db8::1"}, nil},
		{"1: IPv6 literal with port", "[2001:db8::1]:99", Destination{[]string{"[2001:db8::1]:99"}, "[2001:db8::1]:99", "2001:db8::1"}, nil},
		{"2: explicit port skips well-known and SRV", "explicit-port.test:1234", Destination{[]string{"explicit-port.test:1234"}, "explicit-port.test:1234", "explicit-port.test"}, nil},
		{"3.1: delegated IP", "wk-ip.test", Destination{[]string{"1.2.3.4:8448"}, "1.2.3.4", "1.2.3.4"}, nil},
		{"3.1: delegated IPv6 with port", "wk-ip-port.test", Destination{[]string{"[2001:db8::1]:1234"}, "[2001:db8::1]:1234", "2001:db8::1"}, nil},
		{"3.2: delegated name with port", "wk-port.test", Destination{[]string{"delegated.test:4321"}, "delegated.test:4321", "delegated.test"}, nil},
		{"3.3: delegated name, _matrix-fed SRV", "wk-srv.test", Destination{[]string{"target.test:7000", "backup.test:7001"}, "delegated-srv.test", "delegated-srv.test"}, nil},
		{"3.4: delegated name, deprecated _matrix SRV", "wk-oldsrv.test", Destination{[]string{"old-target.test:7002"}, "delegated-oldsrv.test", "delegated-oldsrv.test"}, nil},
		{"3.5: delegated name, no SRV", "wk-plain.test", Destination{[]string{"delegated-plain.test:8448"}, "delegated-plain.test", "delegated-plain.test"}, nil},
		{"3: redirect followed", "wk-redirect.test", Destination{[]string{"after-redirect.test:8000"}, "after-redirect.test:8000", "after-redirect.test"}, nil},
		{"3: any content type", "wk-texthtml.test", Destination{[]string{"html.test:443"}, "html.test:443", "html.test"}, nil},
		{"3: bad JSON falls through", "wk-badjson.test", Destination{[]string{"wk-badjson.test:8448"}, "wk-badjson.test", "wk-badjson.test"}, nil},
		{"3: invalid m.server falls through", "wk-badname.test", Destination{[]string{"wk-badname.test:8448"}, "wk-badname.test", "wk-badname.test"}, nil},
		{"3: non-string m.server falls through", "wk-notstring.test", Destination{[]string{"wk-notstring.test:8448"}, "wk-notstring.test", "wk-notstring.test"}, nil},
		{"3: missing m.server falls through", "wk-missing.test", Destination{[]string{"wk-missing.test:8448"}, "wk-missing.test", "wk-missing.test"}, nil},
		{"4: _matrix-fed SRV of the server name", "wk-srv-itself.test", Destination{[]string{"self-target.test:7003"}, "wk-srv-itself.test", "wk-srv-itself.test"}, nil},
		{"5: deprecated _matrix SRV of the server name", "wk-oldsrv-self.test", Destination{[]string{"self-old.test:7004"}, "wk-oldsrv-self.test", "wk-oldsrv-self.test"}, nil},
		{"6: nothing: port 8448", "wk-404.test", Destination{[]string{"wk-404.test:8448"}, "wk-404.test", "wk-404.test"}, nil},
		{"6: unreachable well-known: port 8448", "unknown.test", Destination{[]string{"unknown.test:8448"}, "unknown.test", "unknown.test"}, nil},
		{"SRV target '.': no federation", "wk-nofed.test", Destination{}, ErrNoFederation},
		{"static host override", "static.test", Destination{[]string{"127.0.0.1:5555"}, "static.test", "static.test"}, nil},
		{"invalid name", "bad name", Destination{}, errAny},
		{"invalid port", "host.test:99999", Destination{}, errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := d.Resolve(context.Background(), c.server)
			switch {
			case c.err == errAny:
				if err == nil {
					t.Fatalf("Resolve(%q) = %+v, want an error", c.server, got)
				}
			case c.err != nil:
				if !errors.Is(err, c.err) {
					t.Fatalf("Resolve(%q) = %+v, %v; want %v", c.server, got, err, c.err)
				}
			case err != nil || !reflect.DeepEqual(got, c.want):
				t.Fatalf("Resolve(%q) = %+v, %v\nwant %+v", c.server, got, err, c.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestWellKnownCaching(t *testing.T) {
	ca := newTestCA(t)
	var fetches atomic.Int32
	var cacheControl atomic.Value
	status := atomic.Int32{}
	status.Store(200)
	cacheControl.Store("max-age=600")
	client := wellKnownServer(t, ca, []string{"cached.test"}, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", cacheControl.Load().(string))
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"m.server":"delegated.test:1"}`))
	})
	now := time.Unix(1_700_000_000, 0)
	d := NewDiscovery(DiscoveryOptions{DNS: fakeDNS{}, WellKnownClient: client})
	d.now = func() time.Time { return now }
	resolve := func() string {
		t.Helper()
		dest, err := d.Resolve(context.Background(), "cached.test")
		if err != nil {
			t.Fatal(err)
		}
		return dest.Addrs[0]
	}
	if got := resolve(); got != "delegated.test:1" || fetches.Load() != 1 {
		t.Fatalf("first resolve: %s after %d fetches", got, fetches.Load())
	}
	now = now.Add(9 * time.Minute)
	if resolve(); fetches.Load() != 1 {
		t.Fatalf("refetched within max-age")
	}
	now = now.Add(2 * time.Minute)
	status.Store(500)
	if got := resolve(); got != "cached.test:8448" || fetches.Load() != 2 {
		t.Fatalf("after max-age, with the well-known failing: %s after %d fetches", got, fetches.Load())
	}
	// An error is cached for an hour.
	now = now.Add(59 * time.Minute)
	if resolve(); fetches.Load() != 2 {
		t.Fatalf("an error was not cached")
	}
	now = now.Add(2 * time.Minute)
	status.Store(200)
	if got := resolve(); got != "delegated.test:1" || fetches.Load() != 3 {
		t.Fatalf("after the error expired: %s after %d fetches", got, fetches.Load())
	}
}

func TestCacheTTL(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cases := []struct {
		name    string
		headers map[string]string
		want    time.Duration
	}{
		{"default", nil, 24 * time.Hour},
		{"max-age", map[string]string{"Cache-Control": "public, max-age=7200"}, 2 * time.Hour},
		{"max-age capped at 48h", map[string]string{"Cache-Control": "max-age=9999999"}, 48 * time.Hour},
		{"max-age floored at 5 minutes", map[string]string{"Cache-Control": "max-age=1"}, 5 * time.Minute},
		{"no-store", map[string]string{"Cache-Control": "no-store"}, 5 * time.Minute},
		{"Expires", map[string]string{"Expires": now.Add(3 * time.Hour).UTC().Format(http.TimeFormat)}, 3 * time.Hour},
		{"max-age wins over Expires", map[string]string{"Cache-Control": "max-age=3600", "Expires": now.Add(3 * time.Hour).UTC().Format(http.TimeFormat)}, time.Hour},
		{"Expires in the past", map[string]string{"Expires": now.Add(-time.Hour).UTC().Format(http.TimeFormat)}, 5 * time.Minute},
		{"bad max-age", map[string]string{"Cache-Control": "max-age=soon"}, 24 * time.Hour},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.headers {
			h.Set(k, v)
		}
		if got := cacheTTL(h, now); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
