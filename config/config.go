// Package config is Myelin's YAML configuration: one typed struct per section, defaults, strict
// parsing (an unknown key is an error naming it), and one validation pass that reports every
// problem at once with the line it stands on.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	// ServerName is the domain part of every user id and room alias on this server.
	ServerName string `yaml:"server_name"`
	// DataDir holds the SQLite database, the signing key, the generated TLS certificate and media.
	DataDir string `yaml:"data_dir"`
	// SigningKeyPath is the server's ed25519 signing key; default <data_dir>/signing.key.
	SigningKeyPath string `yaml:"signing_key_path"`

	Database     Database     `yaml:"database"`
	Client       Client       `yaml:"client"`
	Federation   Federation   `yaml:"federation"`
	Registration Registration `yaml:"registration"`
	Rooms        Rooms        `yaml:"rooms"`
	Log          Log          `yaml:"log"`
	RateLimit    RateLimit    `yaml:"ratelimit"`
	Profile      Profile      `yaml:"profile"`
	Presence     Presence     `yaml:"presence"`
	Debug        Debug        `yaml:"debug"`
	Media        Media        `yaml:"media"`
	E2EE         E2EE         `yaml:"e2ee"`
	TURN         TURN         `yaml:"turn"`
	Support      Support      `yaml:"support"`
	Reports      Reports      `yaml:"reports"`
	Directory    Directory    `yaml:"directory"`
	Push         Push         `yaml:"push"`
	Retention    Retention    `yaml:"retention"`
	Consent      Consent      `yaml:"consent"`

	// lines maps a key path such as "federation.listen" to its line in the file, for messages.
	lines map[string]int
}

// Database selects and tunes the storage backend.
type Database struct {
	// URL is empty for SQLite at <data_dir>/myelin.db, or a postgres:// URL.
	URL string `yaml:"url"`
	// Synchronous is SQLite's durability setting: "normal" survives a process crash, "full" also
	// survives power loss at some cost in write speed.
	Synchronous string `yaml:"sqlite_synchronous"`
	// MaxOpenConns bounds the PostgreSQL connection pool.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Client is the Client-Server API listener.
type Client struct {
	Listen string `yaml:"listen"`
	// PublicBaseURL is what /.well-known/matrix/client announces; empty: not announced.
	PublicBaseURL string `yaml:"public_base_url"`
	// MaxBodyBytes limits every JSON request body.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Federation is the Server-Server API listener and outbound client.
type Federation struct {
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files; if both are empty a self-signed certificate is generated
	// in the data directory (fine for tests, not for talking to other servers).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TrustedCAFiles are extra PEM CA bundles trusted for outbound federation, besides the system
	// roots. There is deliberately no switch to skip certificate verification.
	TrustedCAFiles []string `yaml:"trusted_ca_files"`
	// WellKnownServer is what /.well-known/matrix/server announces as "m.server"; empty: not served.
	WellKnownServer string `yaml:"well_known_server"`
	// KeyNotaries are servers asked for another server's signing keys when that server cannot
	// give them itself. Empty: keys are only fetched from their own server. Asking a notary
	// tells it which servers this one talks to.
	KeyNotaries []string `yaml:"key_notaries"`
	// StaticHosts sends outbound federation for a server name to a fixed host:port instead of
	// discovering it (well-known, SRV, DNS). The Host header and the certificate name stay the
	// server name's. For tests and private networks.
	StaticHosts map[string]string `yaml:"static_hosts"`
	// AllowPrivateAddresses lets outbound federation connect to loopback, private and
	// link-local addresses. Off by default, so that another server cannot make this one probe
	// the operator's own network by naming such an address; tests and private deployments
	// turn it on.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
}

// Registration controls who may create accounts.
type Registration struct {
	Enabled      bool `yaml:"enabled"`
	RequireToken bool `yaml:"require_token"`
}

// Rooms holds defaults for new rooms.
type Rooms struct {
	DefaultVersion string `yaml:"default_version"`
	// EncryptPrivateByDefault turns on m.room.encryption in new private and direct rooms.
	EncryptPrivateByDefault bool `yaml:"encrypt_private_by_default"`
}

// E2EE tunes the end-to-end encryption key store.
type E2EE struct {
	// ToDeviceTTL: a send-to-device message not collected by its device within this long is
	// deleted, so that devices that never come back do not keep queues forever.
	ToDeviceTTL time.Duration `yaml:"to_device_ttl"`
}

// Debug holds switches for operators investigating the server.
type Debug struct {
	// PprofListen serves Go's profiler (net/http/pprof) on this address when set; it must be a
	// loopback address, since profiles can contain anything the process holds in memory.
	PprofListen string `yaml:"pprof_listen"`
}

// Log controls logging. Message bodies, tokens, passwords and keys are never logged.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// RateLimit protects login, registration, sending, joining and inviting.
type RateLimit struct {
	Enabled bool `yaml:"enabled"`
	// PerSecond and Burst are the default token bucket for each user (or IP when unauthenticated).
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Default returns the configuration used for every key the file does not set.
func Default() Config {
	return Config{
		ServerName: "localhost",
		DataDir:    "./myelin-data",
		Database:   Database{Synchronous: "normal", MaxOpenConns: 20},
		Client:     Client{Listen: "127.0.0.1:8008", MaxBodyBytes: 1 << 20},
		Federation: Federation{Listen: "127.0.0.1:8448"},
		Rooms:      Rooms{DefaultVersion: "12", EncryptPrivateByDefault: true},
		Log:        Log{Level: "info", Format: "text"},
		RateLimit:  RateLimit{Enabled: true, PerSecond: 2, Burst: 10},
		Profile:    Profile{RequireSharedRoom: true},
		Directory:  Directory{RequireAuth: true},
		Media:      defaultMedia(),
		E2EE:       E2EE{ToDeviceTTL: 30 * 24 * time.Hour},
		TURN:       TURN{TTL: time.Hour},
		Reports:    Reports{Retention: DefaultReportRetention},
		Push:       defaultPush(),
		Retention:  defaultRetention(),
	}
}

// Error lists every problem found in a configuration file.
type Error struct {
	Path     string
	Problems []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config %s:\n  %s", e.Path, strings.Join(e.Problems, "\n  "))
}

// Load reads, parses and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses and validates configuration text; path is only used in messages.
func Parse(path string, data []byte) (*Config, error) {
	cfg := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Path: path, Problems: []string{err.Error()}}
	}
	if len(root.Content) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return nil, &Error{Path: path, Problems: typeErrors(err)}
		}
	}
	cfg.lines = map[string]int{}
	recordLines(&root, "", cfg.lines)
	cfg.applyDerivedDefaults()
	if problems := cfg.Validate(); len(problems) > 0 {
		return nil, &Error{Path: path, Problems: problems}
	}
	return &cfg, nil
}

// typeErrors splits yaml's multi-line type error ("line 3: field foo not found in type ...") into
// one problem per line, phrased for an operator.
func typeErrors(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []string{err.Error()}
	}
	out := make([]string, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if i := strings.Index(msg, "field "); i >= 0 && strings.Contains(msg, " not found in type") {
			key := strings.TrimSuffix(msg[i+len("field "):], msg[strings.Index(msg, " not found in type"):])
			msg = msg[:i] + "unknown key " + fmt.Sprintf("%q", key)
		}
		out = append(out, msg)
	}
	return out
}

func recordLines(n *yaml.Node, prefix string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			recordLines(c, prefix, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			lines[key] = n.Content[i].Line
			recordLines(n.Content[i+1], key, lines)
		}
	}
}

func (c *Config) applyDerivedDefaults() {
	if c.SigningKeyPath == "" {
		c.SigningKeyPath = filepath.Join(c.DataDir, "signing.key")
	}
}

// SQLitePath is where the embedded database lives when no database URL is set.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "myelin.db") }

// RetiredKeysPath holds the public halves of signing keys retired by `myelin rotate-key`.
func (c *Config) RetiredKeysPath() string { return filepath.Join(c.DataDir, "old_verify_keys.json") }

// TLSPaths returns the federation certificate and key files, generated ones when unset.
func (c *Config) TLSPaths() (cert, key string, generated bool) {
	if c.Federation.TLSCert != "" {
		return c.Federation.TLSCert, c.Federation.TLSKey, false
	}
	return filepath.Join(c.DataDir, "federation.crt"), filepath.Join(c.DataDir, "federation.key"), true
}

// at formats a problem with the line of its key, when the key appears in the file.
func (c *Config) at(key, format string, args ...any) string {
	msg := key + ": " + fmt.Sprintf(format, args...)
	if line, ok := c.lines[key]; ok {
		return fmt.Sprintf("line %d: %s", line, msg)
	}
	return msg
}
