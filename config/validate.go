package config

import (
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// serverNameRE is the appendix's server name grammar: a DNS name, IPv4 or bracketed IPv6 literal,
// with an optional port.
var serverNameRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(:[0-9]{1,5})?$`)

var knownRoomVersions = map[string]bool{
	"1": true, "2": true, "3": true, "4": true, "5": true, "6": true,
	"7": true, "8": true, "9": true, "10": true, "11": true, "12": true,
}

// Validate reports every problem in the configuration, each with its line when known.
func (c *Config) Validate() []string {
	var p []string
	if !serverNameRE.MatchString(c.ServerName) {
		p = append(p, c.at("server_name", "%q is not a valid server name (a host name, IPv4 or [IPv6] literal, optional :port)", c.ServerName))
	}
	if c.DataDir == "" {
		p = append(p, c.at("data_dir", "must not be empty"))
	}
	if u := c.Database.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		p = append(p, c.at("database.url", "must be empty (SQLite in data_dir) or a postgres:// URL"))
	}
	if s := c.Database.Synchronous; s != "normal" && s != "full" {
		p = append(p, c.at("database.sqlite_synchronous", "must be \"normal\" or \"full\", not %q", s))
	}
	if c.Database.MaxOpenConns < 1 {
		p = append(p, c.at("database.max_open_conns", "must be at least 1"))
	}
	p = append(p, c.checkListen("client.listen", c.Client.Listen)...)
	p = append(p, c.checkListen("federation.listen", c.Federation.Listen)...)
	if u := c.Client.PublicBaseURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			p = append(p, c.at("client.public_base_url", "%q is not an http(s) URL", u))
		}
	}
	if c.Client.MaxBodyBytes < 1024 {
		p = append(p, c.at("client.max_body_bytes", "must be at least 1024"))
	}
	if (c.Federation.TLSCert == "") != (c.Federation.TLSKey == "") {
		p = append(p, c.at("federation.tls_cert", "tls_cert and tls_key must be set together"))
	}
	if w := c.Federation.WellKnownServer; w != "" && !serverNameRE.MatchString(w) {
		p = append(p, c.at("federation.well_known_server", "%q is not a server name with optional port", w))
	}
	for i, n := range c.Federation.KeyNotaries {
		if !serverNameRE.MatchString(n) {
			p = append(p, c.at("federation.key_notaries", "entry %d: %q is not a server name", i+1, n))
		} else if n == c.ServerName {
			p = append(p, c.at("federation.key_notaries", "entry %d: this server cannot be its own notary", i+1))
		}
	}
	for _, name := range sortedKeys(c.Federation.StaticHosts) {
		addr := c.Federation.StaticHosts[name]
		if !serverNameRE.MatchString(name) {
			p = append(p, c.at("federation.static_hosts", "%q is not a server name", name))
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || !validPort(port) {
			p = append(p, c.at("federation.static_hosts", "%s: %q is not host:port", name, addr))
		}
	}
	if !knownRoomVersions[c.Rooms.DefaultVersion] {
		p = append(p, c.at("rooms.default_version", "unknown room version %q", c.Rooms.DefaultVersion))
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "warning", "error":
	default:
		p = append(p, c.at("log.level", "must be one of trace, debug, info, warn, error; not %q", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p = append(p, c.at("log.format", "must be \"text\" or \"json\", not %q", c.Log.Format))
	}
	if a := c.Debug.PprofListen; a != "" {
		if host, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(host).IsLoopback() {
			p = append(p, c.at("debug.pprof_listen", "%q must be a loopback host:port (profiles expose the process's memory)", a))
		}
	}
	if c.RateLimit.Enabled && (c.RateLimit.PerSecond <= 0 || c.RateLimit.Burst < 1) {
		p = append(p, c.at("ratelimit.per_second", "per_second must be > 0 and burst >= 1 when enabled"))
	}
	p = append(p, c.validateMedia()...)
	p = append(p, c.validateFeatures()...)
	p = append(p, c.validatePush()...)
	p = append(p, c.validateRetention()...)
	p = append(p, c.validateConsent()...)
	if c.E2EE.ToDeviceTTL < time.Minute {
		p = append(p, c.at("e2ee.to_device_ttl", "must be at least 1m, e.g. 720h"))
	}
	return p
}

func (c *Config) checkListen(key, addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{c.at(key, "%q is not host:port", addr)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return []string{c.at(key, "bad port %q", port)}
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return []string{c.at(key, "host must be an IP address or localhost, not %q", host)}
	}
	return nil
}

func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n <= 65535
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
