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

profile:
  # Show a user's display name and avatar only to themself, to users who share a room with
  # them, and to servers with such a user. Set to false to let anyone look up any profile.
  require_shared_room: true

directory:
  # Ask for an access token on GET /publicRooms and GET /room_summary (the spec allows
  # anonymous access). Set to false to let anyone browse the published room directory.
  require_auth: true
  # Let other servers list this server's published rooms over federation, so that their users
  # can find them. Off, they are refused; space hierarchies are served either way.
  federate: false

presence:
  # Online/offline status. Off, the presence endpoints answer ("offline") but nothing is
  # recorded or shared with other users or servers. On, it is kept in memory and shown to
  # the users who share a room with each user (and sent to their servers); a user goes
  # unavailable after 5 minutes without activity and offline 30 seconds after their last
  # /sync.
  enabled: false

debug:
  # Serve Go's profiler on this loopback address, e.g. "127.0.0.1:6060". Empty: off.
  pprof_listen: ""

ratelimit:
  enabled: true
  # Sustained requests per second and burst, per user (or per IP before login).
  per_second: 2
  burst: 10

media:
  # Largest upload, and largest media fetched from another server, in bytes (50 MiB).
  max_upload_size: 52428800
  # Total bytes one user may have uploaded (1 GiB); 0 for no quota.
  user_quota: 1073741824
  # Asynchronous uploads (created, not uploaded yet) one user may have at once.
  max_pending_uploads: 10
  # Media cached from other servers and not read for this long is deleted (30 days).
  remote_cache_lifetime: "720h"
  # Thumbnails generated on demand: "crop" gives exactly width x height, "scale" fits within.
  thumbnail_sizes:
    - {width: 32, height: 32, method: "crop"}
    - {width: 96, height: 96, method: "crop"}
    - {width: 320, height: 240, method: "scale"}
    - {width: 640, height: 480, method: "scale"}
    - {width: 800, height: 600, method: "scale"}
  # Images declaring more pixels than this are not thumbnailed (decompression bombs).
  max_image_pixels: 32000000
  # Media is downloaded through the authenticated endpoints (spec v1.11). When true, the
  # deprecated unauthenticated /_matrix/media/v3/download and /thumbnail still serve media that
  # existed before authenticated media; new uploads are never served there.
  legacy_unauthenticated_media: true
  # Whether fetching remote media may connect to loopback, private and link-local addresses
  # (checked after DNS resolution, on every redirect). Off, like federation's.
  allow_private_addresses: false
  url_preview:
    # URL previews make the server fetch the pages users link to (and so tell the server, and
    # the site, what they read). Previews are kept in memory only, never in the database; the
    # private address rule above applies to every fetch.
    enabled: false
    # Host name patterns never previewed, e.g. ["*.internal", "intranet.example.com"].
    denied_hosts: []
    # How long a preview is reused before the page is fetched again.
    cache_lifetime: "1h"

e2ee:
  # Send-to-device messages (encryption keys for a device) not collected by their device within
  # this long are deleted (30 days).
  to_device_ttl: "720h"

turn:
  # TURN servers handed to clients for voice and video calls, e.g.
  # ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"].
  # Empty: none is offered (GET /voip/turnServer answers {}).
  uris: []
  # coturn's static-auth-secret: each user gets credentials valid for ttl (TURN REST API).
  shared_secret: ""
  # Or one fixed TURN account handed to every user (instead of shared_secret).
  username: ""
  password: ""
  # How long shared-secret credentials stay valid.
  ttl: "1h"
  # Hand credentials to guest accounts too (this server has no guest accounts yet).
  allow_guests: false

support:
  # Served at /.well-known/matrix/support so that users (including locked-out ones) know whom
  # to ask. Each contact has a role (m.role.admin, m.role.security) and a matrix_id and/or an
  # email_address, e.g. [{matrix_id: "@admin:example.org", role: "m.role.admin"}].
  # With no contacts and no page the endpoint answers 404.
  contacts: []
  # A web page with help for this server's users, e.g. https://example.org/support.html
  page: ""

reports:
  # Content reports users send to the administrators (read them with "myelin reports") are
  # deleted after this long (90 days).
  retention: "2160h"

push:
  # Send message content, sender, sender display name and room name to push gateways (the
  # apps' servers, which pass notifications on to Apple's and Google's push services). Off:
  # only event and room ids, the event type and the unread count leave the server, and the
  # app fetches the message itself. Pushers with format "event_id_only" never get more.
  include_content: false
  # Whether notifications may go to push gateways on loopback, private and link-local
  # addresses. Off, so that a pusher URL cannot make this server probe its own network.
  allow_private_addresses: false
  # Notifications (GET /notifications, unread counts) older than this are deleted (30 days).
  notification_retention: "720h"

retention:
  # How long rooms keep their messages. The content of non-state events older than a room's
  # lifetime is purged for good (state events stay). A room asks for its lifetime with an
  # m.room.retention state event (max_lifetime in ms); this default applies to rooms without
  # one. "0s" (the default) keeps history forever, so upgrading a server loses nothing; set
  # e.g. "8760h" (a year) to purge older messages.
  default_max_lifetime: "0s"
  # Bounds for what a room may ask for; a lifetime outside them is clamped. "0s": no bound.
  min_lifetime: "0s"
  max_lifetime: "0s"
  # How often expired messages are looked for (at least 1s).
  purge_interval: "1h"

consent:
  # Policies new users must accept before their account exists (the m.login.terms stage of
  # registration, after the registration token if one is required). Empty: none is asked for.
  # Each has an id and a version (letters, digits and . _ ~ -) and, per language, the name
  # clients show and an https URL of its text. The server records which versions each user
  # accepted and when; to publish a new version, change version and url: existing users keep
  # their accounts, and "myelin consent" lists who has not accepted the current version. The
  # record goes when the account is erased. For example:
  #   policies:
  #     - id: "privacy_policy"
  #       version: "1.0"
  #       languages:
  #         en: {name: "Privacy Policy", url: "https://example.org/privacy-1.0-en.html"}
  #         fr: {name: "Politique de confidentialité", url: "https://example.org/privacy-1.0-fr.html"}
  policies: []
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
