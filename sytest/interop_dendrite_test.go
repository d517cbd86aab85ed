package sytest

import (
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Interoperability with Dendrite v0.13.8 over real federation: a Myelin server and a Dendrite
// server, both on loopback under the suite's throwaway CA, share rooms of every room version both
// support, created on either side, joined through an invite (each way), by alias and by room id,
// with messages both ways, history from before the join (backfill each way), redactions each
// way, leaves, and profile queries each way.
//
// It runs only when MYELIN_INTEROP_DENDRITE names a dendrite binary (CI without one skips it):
//
//	go install github.com/matrix-org/dendrite/cmd/dendrite@v0.13.8
//	MYELIN_INTEROP_DENDRITE=$(go env GOPATH)/bin/dendrite go test ./sytest -run TestInteropDendrite -count=1 -v
//
// Server names: both servers are named by their federation address, "127.0.0.1:<port>". An IP
// literal with a port is the first step of server discovery in both implementations, so neither
// needs a resolver entry (Dendrite has no equivalent of Myelin's federation.static_hosts and we
// cannot edit /etc/hosts), and no /.well-known or SRV lookup leaves the machine. Myelin accepts IP
// literal server names (config/validate.go); the CA issues each server a certificate with an IP
// SAN of 127.0.0.1, which both verify: Myelin through federation.trusted_ca_files, Dendrite
// through SSL_CERT_FILE (Go's system pool, which gomatrixserverlib's federation client uses), so
// Dendrite's disable_tls_validation stays off and TLS is checked for real in both directions.
//
// Dendrite fetches keys directly (key_perspectives empty, prefer_direct_fetch): there is no
// matrix.org to ask. Its open registration needs the -really-enable-open-registration flag.

// dendriteEnv names the dendrite binary; the test skips without it.
const dendriteEnv = "MYELIN_INTEROP_DENDRITE"

// interopRoomVersions are the room versions both servers support: Dendrite v0.13.8
// (gomatrixserverlib 2024-09-10) has the stable versions 1 to 11; Myelin has 1 to 12.
var interopRoomVersions = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}

// dendrite is one running Dendrite process.
type dendrite struct {
	Name      string // its server name, "127.0.0.1:<https port>"
	ClientURL string
	cmd       *exec.Cmd
	logs      *syncBuffer
	exited    chan struct{}
}

// asServer lets the suite's client helpers (Register, Login), which need only a client URL, drive
// Dendrite.
func (d *dendrite) asServer() *Server { return &Server{Name: d.Name, ClientURL: d.ClientURL} }

// startDendrite starts Dendrite with SQLite databases in a temporary directory, TLS on its
// federation port with a certificate of ca, and ca trusted for its outbound requests.
func startDendrite(t *testing.T, bin string, ca *CA) *dendrite {
	t.Helper()
	dir := t.TempDir()
	httpAddr, httpsAddr := freeAddr(t), freeAddr(t)
	d := &dendrite{Name: httpsAddr, ClientURL: "http://" + httpAddr, logs: &syncBuffer{}, exited: make(chan struct{})}
	certPath, keyPath := ca.Issue(t, dir, hostOf(d.Name))

	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	signingKey := filepath.Join(dir, "matrix_key.pem")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "MATRIX PRIVATE KEY", Headers: map[string]string{"Key-ID": "ed25519:interop"}, Bytes: seed})
	if err := os.WriteFile(signingKey, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	db := func(name string) map[string]any {
		return map[string]any{"connection_string": "file:" + filepath.Join(dir, "dendrite_"+name+".db")}
	}
	cfg := map[string]any{
		"version": 2,
		"global": map[string]any{
			"server_name":                    d.Name,
			"private_key":                    signingKey,
			"key_id":                         "ed25519:interop",
			"trusted_third_party_id_servers": []string{},
			"jetstream":                      map[string]any{"storage_path": dir, "in_memory": true},
			"presence":                       map[string]any{"enable_inbound": false, "enable_outbound": false},
			"server_notices":                 map[string]any{"enabled": false},
			"report_stats":                   map[string]any{"enabled": false},
		},
		"client_api": map[string]any{
			"registration_disabled": false,
			"guests_disabled":       true,
			"rate_limiting":         map[string]any{"enabled": false},
		},
		"federation_api": map[string]any{
			"database":               db("federationapi"),
			"disable_tls_validation": false,
			"key_perspectives":       []any{},
			"prefer_direct_fetch":    true,
		},
		"key_server":      map[string]any{"database": db("keyserver")},
		"media_api":       map[string]any{"database": db("mediaapi"), "base_path": filepath.Join(dir, "media")},
		"room_server":     map[string]any{"database": db("roomserver")},
		"sync_api":        map[string]any{"database": db("syncapi"), "search": map[string]any{"enabled": false}},
		"user_api":        map[string]any{"account_database": db("userapi"), "bcrypt_cost": 4},
		"relay_api":       map[string]any{"database": db("relayapi")},
		"mscs":            map[string]any{"database": db("mscs")},
		"logging":         []any{},
		"app_service_api": map[string]any{"config_files": []string{}},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "dendrite.yaml")
	if err := os.WriteFile(cfgPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-config", cfgPath, "-really-enable-open-registration",
		"-http-bind-address", httpAddr, "-https-bind-address", httpsAddr, "-tls-cert", certPath, "-tls-key", keyPath)
	d.cmd.Dir = dir
	// Dendrite's federation client verifies certificates against Go's system pool: the test CA
	// becomes its only root.
	d.cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca.CertPath, "SSL_CERT_DIR="+dir)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("logs of dendrite %s:\n%s", d.Name, d.logs.String())
		}
	})
	if err := waitUntilUp(d.ClientURL+"/_matrix/client/versions", d.exited, 60*time.Second); err != nil {
		t.Fatalf("dendrite did not start: %v\nlogs:\n%s", err, d.logs.String())
	}
	return d
}

func (d *dendrite) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// seesMessage waits until c finds the message among the room's latest events through /messages.
func seesMessage(t *testing.T, c *Client, roomID, eventID, body string) {
	t.Helper()
	eventually(t, 30*time.Second, "message "+eventID+" ("+body+") in /messages on "+c.Base, func() bool {
		r := c.Do(t, "GET", roomPath(roomID, "/messages?dir=b&limit=50"), nil)
		if r.Status != 200 {
			return false
		}
		chunk, _ := r.Body["chunk"].([]any)
		for _, e := range chunk {
			ev, _ := e.(map[string]any)
			if ev["event_id"] != eventID {
				continue
			}
			content, _ := ev["content"].(map[string]any)
			if got, _ := content["body"].(string); got != body {
				t.Fatalf("event %s has body %q, want %q", eventID, got, body)
			}
			return true
		}
		return false
	})
}

// invitedTo waits until c's /sync lists an invite to the room.
func invitedTo(t *testing.T, c *Client, roomID string) {
	t.Helper()
	eventually(t, 30*time.Second, c.UserID+"'s invite to "+roomID+" in /sync", func() bool {
		r := c.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0", nil)
		rooms, _ := r.Body["rooms"].(map[string]any)
		invites, _ := rooms["invite"].(map[string]any)
		_, ok := invites[roomID]
		return r.Status == 200 && ok
	})
}

// joinedIn waits until c's /sync lists the room among its joined rooms.
func joinedIn(t *testing.T, c *Client, roomID string) {
	t.Helper()
	eventually(t, 30*time.Second, c.UserID+" joined to "+roomID+" in /sync", func() bool {
		r := c.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0", nil)
		rooms, _ := r.Body["rooms"].(map[string]any)
		joined, _ := rooms["join"].(map[string]any)
		_, ok := joined[roomID]
		return r.Status == 200 && ok
	})
}

// roomVersionOf reads the room version from the create event as c sees it.
func roomVersionOf(t *testing.T, c *Client, roomID string) string {
	t.Helper()
	r := c.Must(t, 200, "GET", roomPath(roomID, "/state/m.room.create/"), nil)
	if v := r.Str("room_version"); v != "" {
		return v
	}
	return "1" // a create event without room_version is version 1
}

// redactedBothWays has a Myelin user and a Dendrite user each redact a message of their own and
// waits until the other server serves it redacted: the redaction event passes the receiving
// server's auth and signature checks, and both apply the room version's redaction algorithm.
//
// Known Dendrite v0.13.8 bug, worked around by skipping that one direction: in room version 11
// the redacted event id is in content.redacts (room version 11 moved it there; Myelin writes it
// only there, as the spec says), but gomatrixserverlib's Redacts() reads only the top-level
// "redacts" key for every room version, so Dendrite stores a redaction from Myelin without
// applying it. (Dendrite's own v11 redactions carry both keys, and Myelin applies them.)
func redactedBothWays(t *testing.T, mine, theirs *Client, roomID, version string) {
	t.Helper()
	for _, pair := range [][2]*Client{{mine, theirs}, {theirs, mine}} {
		by, seer := pair[0], pair[1]
		body := "to be redacted by " + by.UserID
		ev := say(t, by, roomID, body)
		seesMessage(t, seer, roomID, ev, body)
		fedTxn++
		by.Must(t, 200, "PUT", roomPath(roomID, fmt.Sprintf("/redact/%s/interop%d", url.PathEscape(ev), fedTxn)),
			map[string]any{"reason": "interop"})
		if by == mine && version == "11" {
			t.Logf("not checked: Dendrite v0.13.8 ignores content.redacts of a room version 11 redaction")
			continue
		}
		eventually(t, 30*time.Second, "redaction of "+ev+" on "+seer.Base, func() bool {
			r := seer.Do(t, "GET", roomPath(roomID, "/event/"+url.PathEscape(ev)), nil)
			content, _ := r.Body["content"].(map[string]any)
			return r.Status == 200 && len(content) == 0
		})
	}
}

// profilesAcross reads each user's display name from the other server (a federation profile
// query each way). Dendrite v0.13.8 turns a remote 403 (Myelin's answer to a server that shares
// no room with the user) into a 500 {"Err":""} for its client, so it is asked only once the
// users share a room.
func profilesAcross(t *testing.T, a, b *Client) {
	t.Helper()
	for _, pair := range [][2]*Client{{a, b}, {b, a}} {
		owner, reader := pair[0], pair[1]
		name := "name of " + owner.UserID
		owner.Must(t, 200, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(owner.UserID)+"/displayname",
			map[string]any{"displayname": name})
		r := reader.Must(t, 200, "GET", "/_matrix/client/v3/profile/"+url.PathEscape(owner.UserID), nil)
		if r.Str("displayname") != name {
			t.Errorf("%s's profile read on %s: %s", owner.UserID, reader.Base, r.Raw)
		}
	}
}

func TestInteropDendrite(t *testing.T) {
	bin := os.Getenv(dendriteEnv)
	if bin == "" {
		t.Skipf("%s is not set: no Dendrite binary to test against", dendriteEnv)
	}
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		ca := NewCA(t)
		den := startDendrite(t, bin, ca)
		myAddr := freeAddr(t)
		hs := Start(t, Options{ServerName: myAddr, CA: ca, DatabaseURL: dbURL, Config: map[string]any{
			"federation": map[string]any{"listen": myAddr},
		}})
		const pw = "correct horse battery staple"
		alice := Register(t, hs, "alice", pw)
		bob := Register(t, hs, "bob", pw)
		dave := Register(t, den.asServer(), "dave", pw)

		for _, v := range interopRoomVersions {
			t.Run("v"+v, func(t *testing.T) {
				var mine, theirs string
				t.Run("myelin room, dendrite user invited, messages both ways", func(t *testing.T) {
					mine = alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
						"preset": "private_chat", "room_version": v, "name": "myelin v" + v,
					}).Str("room_id")
					before := say(t, alice, mine, "before dave in v"+v)
					alice.Must(t, 200, "POST", roomPath(mine, "/invite"), map[string]any{"user_id": dave.UserID})
					invitedTo(t, dave, mine)
					dave.Must(t, 200, "POST", roomPath(mine, "/join"), map[string]any{})
					membershipIs(t, alice, mine, dave.UserID, "join")
					joinedIn(t, dave, mine)
					if got := roomVersionOf(t, dave, mine); got != v {
						t.Errorf("room version on Dendrite: %s, want %s", got, v)
					}
					if r := dave.Must(t, 200, "GET", roomPath(mine, "/state/m.room.name/"), nil); r.Str("name") != "myelin v"+v {
						t.Errorf("room name on Dendrite: %s", r.Raw)
					}
					ev := say(t, alice, mine, "from myelin in v"+v)
					seesMessage(t, dave, mine, ev, "from myelin in v"+v)
					ev = say(t, dave, mine, "from dendrite in v"+v)
					seesMessage(t, alice, mine, ev, "from dendrite in v"+v)
					if v == interopRoomVersions[0] {
						// Myelin answers profile queries only from servers that share a room
						// with the user (a privacy default), so this waits for the first one.
						profilesAcross(t, alice, dave)
					}
					// History from before the join (visibility "shared"): Dendrite backfills it
					// from Myelin.
					seesMessage(t, dave, mine, before, "before dave in v"+v)
					redactedBothWays(t, alice, dave, mine, v)
				})

				t.Run("dendrite room, joined by alias and by id, messages both ways", func(t *testing.T) {
					aliasName := "interop-v" + v
					theirs = dave.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
						"preset": "public_chat", "room_version": v, "room_alias_name": aliasName, "name": "dendrite v" + v,
					}).Str("room_id")
					before := say(t, dave, theirs, "before myelin in v"+v)
					alias := "#" + aliasName + ":" + den.Name
					r := alice.Do(t, "POST", "/_matrix/client/v3/join/"+url.PathEscape(alias), map[string]any{})
					if r.Status != 200 || r.Str("room_id") != theirs {
						t.Fatalf("join by alias %s: %d %s", alias, r.Status, r.Raw)
					}
					bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(theirs)+"?server_name="+url.QueryEscape(den.Name), map[string]any{})
					membershipIs(t, dave, theirs, alice.UserID, "join")
					membershipIs(t, dave, theirs, bob.UserID, "join")
					if got := roomVersionOf(t, alice, theirs); got != v {
						t.Errorf("room version on Myelin: %s, want %s", got, v)
					}
					if r := bob.Must(t, 200, "GET", roomPath(theirs, "/state/m.room.name/"), nil); r.Str("name") != "dendrite v"+v {
						t.Errorf("room name on Myelin: %s", r.Raw)
					}
					ev := say(t, dave, theirs, "dendrite to all in v"+v)
					seesMessage(t, alice, theirs, ev, "dendrite to all in v"+v)
					seesMessage(t, bob, theirs, ev, "dendrite to all in v"+v)
					ev = say(t, alice, theirs, "alice on dendrite's room in v"+v)
					seesMessage(t, dave, theirs, ev, "alice on dendrite's room in v"+v)
					// bob sees alice's message without federation (same server), then his own
					// goes out.
					seesMessage(t, bob, theirs, ev, "alice on dendrite's room in v"+v)
					ev = say(t, bob, theirs, "bob on dendrite's room in v"+v)
					seesMessage(t, dave, theirs, ev, "bob on dendrite's room in v"+v)
					// History from before Myelin joined: Myelin backfills it from Dendrite.
					seesMessage(t, alice, theirs, before, "before myelin in v"+v)
					redactedBothWays(t, bob, dave, theirs, v)
				})

				t.Run("leave both ways, then a dendrite invite", func(t *testing.T) {
					if mine == "" || theirs == "" {
						t.Skip("the rooms were not set up")
					}
					dave.Must(t, 200, "POST", roomPath(mine, "/leave"), map[string]any{})
					membershipIs(t, alice, mine, dave.UserID, "leave")
					alice.Must(t, 200, "POST", roomPath(theirs, "/leave"), map[string]any{})
					membershipIs(t, dave, theirs, alice.UserID, "leave")
					// bob is still in the room: Dendrite keeps sending to Myelin.
					ev := say(t, dave, theirs, "after alice left in v"+v)
					seesMessage(t, bob, theirs, ev, "after alice left in v"+v)

					// An invite from Dendrite (its invite API) brings alice back.
					dave.Must(t, 200, "POST", roomPath(theirs, "/invite"), map[string]any{"user_id": alice.UserID})
					invitedTo(t, alice, theirs)
					alice.Must(t, 200, "POST", roomPath(theirs, "/join"), map[string]any{})
					membershipIs(t, dave, theirs, alice.UserID, "join")
					ev = say(t, alice, theirs, "back in v"+v)
					seesMessage(t, dave, theirs, ev, "back in v"+v)

					alice.Must(t, 200, "POST", roomPath(theirs, "/leave"), map[string]any{})
					bob.Must(t, 200, "POST", roomPath(theirs, "/leave"), map[string]any{})
					membershipIs(t, dave, theirs, alice.UserID, "leave")
					membershipIs(t, dave, theirs, bob.UserID, "leave")
				})
			})
		}
	})
}
