package sytest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"myelin/config"
	"myelin/storage"
)

// TestExportUser: `myelin export-user` writes everything the server holds about a user, and
// nothing of others beyond what the user could see. It runs against the live server's
// configuration while the server runs: SQLite in WAL mode lets another process read beside the
// server's writer, and PostgreSQL does anyway.
func TestExportUser(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password 1")
		bob := Register(t, s, "bob", "bob password 1")
		phone, _ := Login(t, s, "alice", "alice password 1", map[string]any{"initial_device_display_name": "Alice Phone"})
		newOlmDevice(t, phone).uploadKeys(t, 3)

		// A room alice made, where bob joins and both speak; one message of alice's is redacted.
		shared := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		bob.Must(t, 200, "POST", v3+"/join/"+esc(shared), map[string]any{})
		aliceMsg := sendText(t, alice, shared, "alice-message-one")
		bobMsg := sendText(t, bob, shared, "bob-message-visible")
		gone := sendText(t, alice, shared, "alice-message-redacted")
		redact(t, alice, shared, gone, "oops", 200)
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(shared)+"/receipt/m.read/"+esc(bobMsg), map[string]any{})
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(shared)+"/report/"+esc(bobMsg), map[string]any{"reason": "alice-report-reason"})

		// A room of bob's that only shows history to members from their join on.
		joinedOnly := createRoom(t, bob, map[string]any{"preset": "public_chat", "initial_state": []any{map[string]any{
			"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}}})
		sendText(t, bob, joinedOnly, "bob-before-alice-joined")
		alice.Must(t, 200, "POST", v3+"/join/"+esc(joinedOnly), map[string]any{})
		sendText(t, bob, joinedOnly, "bob-after-alice-joined")
		// A room alice was never in.
		sendText(t, bob, createRoom(t, bob, map[string]any{"preset": "private_chat"}), "bob-private-room")

		alice.Must(t, 200, "PUT", v3+"/profile/"+esc(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice Exported"})
		alice.Must(t, 200, "PUT", v3+"/user/"+esc(alice.UserID)+"/account_data/org.example.export", map[string]any{"marker": "alice-account-data"})
		bob.Must(t, 200, "PUT", v3+"/user/"+esc(bob.UserID)+"/account_data/org.example.export", map[string]any{"marker": "bob-account-data"})
		alice.Must(t, 200, "PUT", v3+"/user/"+esc(alice.UserID)+"/rooms/"+esc(shared)+"/account_data/org.example.room", map[string]any{"marker": "alice-room-data"})
		alice.Must(t, 200, "POST", v3+"/user/"+esc(alice.UserID)+"/filter", map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 7}}})
		alice.Must(t, 200, "POST", v3+"/user/"+esc(alice.UserID)+"/openid/request_token", map[string]any{})
		aliceMedia := []byte("alice-media-bytes: a file only alice uploaded")
		_, aliceMediaID := upload(t, alice, aliceMedia, "text/plain", "alice.txt")
		upload(t, bob, []byte("bob-media-bytes"), "text/plain", "bob.txt")
		const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
		version := alice.Must(t, 200, "POST", v3+"/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "alice-backup-public-key"}}).Str("version")
		alice.Must(t, 200, "PUT", v3+"/room_keys/keys/"+esc(shared)+"/alice-session?version="+version, map[string]any{
			"first_message_index": 0, "forwarded_count": 0, "is_verified": true,
			"session_data": map[string]any{"ciphertext": "alice-backup-ciphertext", "ephemeral": "e", "mac": "m"}})

		dir := t.TempDir()
		out := filepath.Join(dir, "alice.zip")
		exportUser := func(args ...string) (string, string, int) {
			return runCLI(t, "", append([]string{"export-user", "--config", s.ConfigPath, "--user", alice.UserID}, args...)...)
		}
		if _, stderr, code := exportUser("--out", out); code != 0 {
			t.Fatalf("export-user: exit %d: %s", code, stderr)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("archive: %v, mode %v, want 0600", err, fi)
		}
		files := readZip(t, out)
		checkManifest(t, files, alice.UserID, false)
		all := joined(files)

		var account map[string]any
		mustUnmarshal(t, files["account.json"], &account)
		if account["user_id"] != alice.UserID || account["admin"] != false || account["deactivated"] != false {
			t.Errorf("account.json: %s", files["account.json"])
		}
		for _, want := range []string{"Alice Exported", "Alice Phone", "alice-account-data", "alice-room-data",
			"alice-message-one", aliceMsg, "alice-report-reason", "alice-backup-ciphertext", "alice-backup-public-key",
			`"limit": 7`, "signed_curve25519", phone.DeviceID} {
			if !bytes.Contains(all, []byte(want)) {
				t.Errorf("the archive lacks %q", want)
			}
		}
		// What others wrote stays out, and so does what alice redacted.
		for _, never := range []string{"bob-account-data", "bob-message-visible", "bob-before-alice-joined",
			"bob-after-alice-joined", "bob-private-room", "bob-media-bytes", "alice-message-redacted"} {
			if bytes.Contains(all, []byte(never)) {
				t.Errorf("the archive holds %q", never)
			}
		}
		if !bytes.Contains(all, []byte(gone)) || !bytes.Contains(all, []byte("redacted_because")) {
			t.Errorf("the redacted message is not exported as redacted")
		}
		if got := files["media/"+aliceMediaID]; !bytes.Equal(got, aliceMedia) {
			t.Errorf("media/%s: %q, want %q", aliceMediaID, got, aliceMedia)
		}
		var openid map[string]any
		mustUnmarshal(t, files["openid_tokens.json"], &openid)
		if openid["count"] != float64(1) {
			t.Errorf("openid_tokens.json: %s", files["openid_tokens.json"])
		}

		// No secret of any kind: neither the tokens the clients hold nor the hashes the server
		// stores of them and of the passwords.
		secrets := append(storedSecrets(t, s), alice.Token, phone.Token, bob.Token)
		for _, secret := range secrets {
			if secret != "" && bytes.Contains(all, []byte(secret)) {
				t.Errorf("the archive holds a token, a token hash or a password hash")
			}
		}

		// An existing archive is refused, unchanged, unless --force.
		before, _ := os.ReadFile(out)
		if _, stderr, code := exportUser("--out", out); code == 0 || !strings.Contains(stderr, "exists") {
			t.Errorf("overwrite without --force: exit %d: %s", code, stderr)
		}
		if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
			t.Error("a refused export changed the existing archive")
		}
		if _, stderr, code := exportUser("--out", out, "--force"); code != 0 {
			t.Errorf("--force: exit %d: %s", code, stderr)
		}
		if _, _, code := runCLI(t, "", "export-user", "--config", s.ConfigPath, "--user", "@nobody:localhost", "--out", filepath.Join(dir, "x.zip")); code != 1 {
			t.Errorf("unknown user: exit %d, want 1", code)
		}
		if _, err := os.Stat(filepath.Join(dir, "x.zip")); err == nil {
			t.Error("a failed export left an archive behind")
		}

		// With the room history, and as a directory: what alice could read of bob's is there,
		// what history visibility hid from her is not.
		histDir := filepath.Join(dir, "history") + "/"
		if _, stderr, code := exportUser("--out", histDir, "--include-room-history"); code != 0 {
			t.Fatalf("export-user --include-room-history: exit %d: %s", code, stderr)
		}
		hist := readDir(t, histDir)
		checkManifest(t, hist, alice.UserID, true)
		all = joined(hist)
		for _, want := range []string{"bob-message-visible", "bob-after-alice-joined", "alice-message-one"} {
			if !bytes.Contains(all, []byte(want)) {
				t.Errorf("the history archive lacks %q", want)
			}
		}
		for _, never := range []string{"bob-before-alice-joined", "bob-private-room", "bob-media-bytes", "alice-message-redacted"} {
			if bytes.Contains(all, []byte(never)) {
				t.Errorf("the history archive holds %q", never)
			}
		}
		for _, secret := range secrets {
			if secret != "" && bytes.Contains(all, []byte(secret)) {
				t.Errorf("the history archive holds a token, a token hash or a password hash")
			}
		}
	})
}

// storedSecrets reads every token hash and password hash the server stores.
func storedSecrets(t *testing.T, s *Server) []string {
	t.Helper()
	cfg, err := config.Load(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{URL: cfg.Database.URL, SQLitePath: cfg.SQLitePath(), MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, q := range []string{
		`SELECT password_hash FROM accounts WHERE password_hash IS NOT NULL`,
		`SELECT token_hash FROM access_tokens`,
		`SELECT token_hash FROM refresh_tokens`,
		`SELECT token_hash FROM openid_tokens`,
	} {
		rows, err := db.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		rows.Close()
	}
	if len(out) < 5 { // two passwords, three access tokens, one OpenID token
		t.Fatalf("read only %d stored secrets", len(out))
	}
	return out
}

// checkManifest checks manifest.json against the files: each listed with its size and SHA-256,
// and none unlisted.
func checkManifest(t *testing.T, files map[string][]byte, userID string, history bool) {
	t.Helper()
	var m struct {
		Format             string `json:"format"`
		FormatVersion      int    `json:"format_version"`
		ServerName         string `json:"server_name"`
		UserID             string `json:"user_id"`
		ExportedTS         int64  `json:"exported_ts"`
		IncludeRoomHistory bool   `json:"include_room_history"`
		Files              []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	mustUnmarshal(t, files["manifest.json"], &m)
	if m.Format != "myelin.user_export" || m.FormatVersion != 1 || m.ServerName != "localhost" || m.UserID != userID ||
		m.ExportedTS == 0 || m.IncludeRoomHistory != history {
		t.Errorf("manifest.json: %s", files["manifest.json"])
	}
	listed := map[string]bool{"manifest.json": true}
	for _, f := range m.Files {
		listed[f.Name] = true
		sum := sha256.Sum256(files[f.Name])
		if data, ok := files[f.Name]; !ok || int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("manifest entry %s does not match the file", f.Name)
		}
	}
	for name := range files {
		if !listed[name] {
			t.Errorf("%s is not in the manifest", name)
		}
	}
	for _, name := range []string{"account.json", "profile.json", "devices.json", "account_data.json", "rooms.json",
		"media.json", "e2e/devices.json", "e2e/cross_signing.json", "e2e/key_backups.json", "receipts.json"} {
		if !listed[name] {
			t.Errorf("the archive has no %s", name)
		}
	}
}

func readZip(t *testing.T, path string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = data
	}
	return out
}

func readDir(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := d.Info(); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// joined is every file's content, for searching the whole archive at once.
func joined(files map[string][]byte) []byte {
	var b bytes.Buffer
	for name, data := range files {
		b.WriteString(name)
		b.Write(data)
	}
	return b.Bytes()
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
}
