package config

import (
	"bytes"
	"strconv"
	"text/template"
)

// GenerateOptions are the values an operator may set when generating a config.
type GenerateOptions struct {
	ServerName       string
	DataDir          string
	ClientListen     string
	FederationListen string
	DatabaseURL      string
}

var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(
	`# Myelin configuration. Every key is optional; the values shown are the defaults unless noted.

# The domain of this server: user ids look like @alice:{{.ServerName}}. It cannot change once
# users and rooms exist.
server_name: {{q .ServerName}}

# Where Myelin keeps its SQLite database, signing key, generated TLS certificate and media.
data_dir: {{q .DataDir}}

# The server's ed25519 signing key (Synapse/Dendrite format). Generated on first start, mode 0600.
# signing_key_path: {{q .DataDir}}/signing.key

database:
  # Empty: SQLite at <data_dir>/myelin.db. Or a PostgreSQL URL such as
  # postgres://myelin@localhost/myelin?sslmode=disable
  url: {{q .DatabaseURL}}
  # SQLite durability: "normal" survives a crash of Myelin; "full" also survives power loss.
  sqlite_synchronous: "normal"
  # PostgreSQL connection pool size.
  max_open_conns: 20

client:
  # The Client-Server API listener (put a TLS reverse proxy in front of it).
  listen: {{q .ClientListen}}
  # Announced by /.well-known/matrix/client when set, e.g. https://matrix.example.org
  public_base_url: ""
  # Largest accepted JSON request body, in bytes.
  max_body_bytes: 1048576

federation:
  # The Server-Server API listener; always TLS.
  listen: {{q .FederationListen}}
  # PEM certificate and key. Empty: a self-signed certificate is generated in data_dir, which
  # other servers will not accept; use a real certificate to federate.
  tls_cert: ""
  tls_key: ""
  # Extra CA bundles to trust for outbound federation (e.g. a private test CA).
  trusted_ca_files: []
  # Announced as "m.server" by /.well-known/matrix/server when set, e.g. matrix.example.org:443
  well_known_server: ""
  # Servers asked for another server's signing keys when it cannot be reached, e.g.
  # ["matrix.org"]. Empty: keys are only fetched from their own server. A notary learns which
  # servers this one talks to.
  key_notaries: []
  # Static host overrides: send federation for a server name to a fixed host:port instead of
  # discovering it (well-known, SRV, DNS); certificates must still be valid for the server
  # name. For tests and private networks, e.g. {"hs2.example": "10.0.0.2:8448"}.
  static_hosts: {}
  # Whether outbound federation may connect to loopback, private (10/8, 172.16/12, 192.168/16,
  # fc00::/7) and link-local addresses. Off, so that federation cannot be used to probe this
  # server's own network; turn on for tests and private deployments.
  allow_private_addresses: false

registration:
  # Whether anyone may create an account through the client API.
  enabled: false
  # Whether registration needs a token created by an administrator.
  require_token: false

rooms:
  # Room version of new rooms.
  default_version: "12"
  # New private rooms and direct chats are end-to-end encrypted.
  encrypt_private_by_default: true

log:
  # trace, debug, info, warn or error. Logs never contain message bodies, tokens or passwords.
  level: "info"
  # text or json
  format: "text"

ratelimit:
  enabled: true
  # Sustained requests per second and burst, per user (or per IP before login).
  per_second: 2
  burst: 10
`))

// Generate returns a complete, commented configuration file.
func Generate(o GenerateOptions) []byte {
	d := Default()
	if o.ServerName == "" {
		o.ServerName = d.ServerName
	}
	if o.DataDir == "" {
		o.DataDir = d.DataDir
	}
	if o.ClientListen == "" {
		o.ClientListen = d.Client.Listen
	}
	if o.FederationListen == "" {
		o.FederationListen = d.Federation.Listen
	}
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, o); err != nil {
		panic(err) // the template is a constant; a failure is a programming error
	}
	return b.Bytes()
}
