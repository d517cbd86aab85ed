package export_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"myelin/export"
	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

const (
	server = "example.org"
	alice  = "@alice:example.org"
	bob    = "@bob:example.org"
)

// memSink keeps an archive in memory.
type memSink struct {
	files map[string]*bytes.Buffer
	order []string
}

func (m *memSink) Create(name string) (io.Writer, error) {
	if m.files == nil {
		m.files = map[string]*bytes.Buffer{}
	}
	if m.files[name] != nil {
		return nil, errors.New("duplicate file " + name)
	}
	b := &bytes.Buffer{}
	m.files[name] = b
	m.order = append(m.order, name)
	return b, nil
}

func (m *memSink) all() []byte {
	var out []byte
	for _, name := range m.order {
		out = append(out, m.files[name].Bytes()...)
	}
	return out
}

func send(t *testing.T, rs *roomserver.Server, roomID, sender, body string) string {
	t.Helper()
	content, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": body})
	ev, err := rs.SendEvent(context.Background(), event.Proto{Type: "m.room.message", Sender: sender, RoomID: roomID, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return ev.ID()
}

// TestExport: an export holds the user's account, devices, own events and media, the events of
// others only with IncludeRoomHistory and only where history visibility lets the user see them,
// and never a token hash or password hash. Every file is in the manifest with its digest.
func TestExport(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		key, err := keys.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		rs := roomserver.New(db, server, key, roomserver.Options{})
		const passwordHash, tokenHash = "$argon2id$v=19$secret-password-hash", "secret-access-token-hash"
		mediaBytes := []byte("alice's uploaded file")
		mediaHash := sha256.Sum256(mediaBytes)
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, lp := range []string{"alice", "bob"} {
				if err := tx.InsertAccount(ctx, storage.Account{Localpart: lp, PasswordHash: passwordHash + lp, CreatedTS: 42}); err != nil {
					return err
				}
				if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: lp, DeviceID: "DEV" + lp, DisplayName: lp + "'s laptop", CreatedTS: 1, LastSeenTS: 2, LastSeenIP: "192.0.2.7"}); err != nil {
					return err
				}
				if err := tx.InsertAccessToken(ctx, storage.AccessToken{Hash: tokenHash + lp, Localpart: lp, DeviceID: "DEV" + lp, CreatedTS: 1}); err != nil {
					return err
				}
			}
			return tx.InsertMedia(ctx, storage.Media{Origin: server, MediaID: "AliceMedia1", ContentHash: hex.EncodeToString(mediaHash[:]),
				ContentType: "text/plain", UploadName: "a.txt", Size: int64(len(mediaBytes)), Uploader: alice, CreatedTS: 5, UploadedTS: 5, LastAccessTS: 5})
		}); err != nil {
			t.Fatal(err)
		}
		shared, err := rs.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, Preset: roomserver.PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Join(ctx, shared, bob); err != nil {
			t.Fatal(err)
		}
		send(t, rs, shared, alice, "alice says hello")
		send(t, rs, shared, bob, "bob answers")
		redacted := send(t, rs, shared, alice, "alice regrets this")
		if _, err := rs.Redact(ctx, shared, alice, redacted, "oops"); err != nil {
			t.Fatal(err)
		}
		hv, _ := json.Marshal(map[string]string{"history_visibility": "joined"})
		bobs, err := rs.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: bob, Preset: roomserver.PresetPublicChat,
			InitialState: []roomserver.StateEvent{{Type: "m.room.history_visibility", Content: hv}}})
		if err != nil {
			t.Fatal(err)
		}
		send(t, rs, bobs, bob, "bob before alice came")
		if _, err := rs.Join(ctx, bobs, alice); err != nil {
			t.Fatal(err)
		}
		send(t, rs, bobs, bob, "bob after alice came")

		opts := export.Options{ServerName: server, DB: db, Rooms: rs,
			OpenMedia: func(hash string) (io.ReadCloser, error) {
				if hash != hex.EncodeToString(mediaHash[:]) {
					return nil, errors.New("unknown content")
				}
				return io.NopCloser(bytes.NewReader(mediaBytes)), nil
			}}
		run := func(history bool) *memSink {
			t.Helper()
			opts.IncludeRoomHistory = history
			sink := &memSink{}
			m, err := export.Export(ctx, opts, alice, sink)
			if err != nil {
				t.Fatal(err)
			}
			if sink.order[len(sink.order)-1] != "manifest.json" || len(m.Files) != len(sink.order)-1 || m.UserID != alice ||
				m.FormatVersion != export.FormatVersion || m.IncludeRoomHistory != history {
				t.Fatalf("manifest %+v for files %v", m, sink.order)
			}
			for _, f := range m.Files {
				sum := sha256.Sum256(sink.files[f.Name].Bytes())
				if hex.EncodeToString(sum[:]) != f.SHA256 || int64(sink.files[f.Name].Len()) != f.Size {
					t.Errorf("manifest entry of %s does not match", f.Name)
				}
			}
			for _, s := range []string{passwordHash, tokenHash} {
				if bytes.Contains(sink.all(), []byte(s)) {
					t.Errorf("the archive holds %q", s)
				}
			}
			return sink
		}

		plain := run(false)
		all := string(plain.all())
		for _, want := range []string{"alice says hello", redacted, "redacted_because", "alice's laptop", "192.0.2.7", `"has_password": true`} {
			if !strings.Contains(all, want) {
				t.Errorf("the export lacks %q", want)
			}
		}
		for _, never := range []string{"bob answers", "bob before", "bob after", "alice regrets", "bob's laptop"} {
			if strings.Contains(all, never) {
				t.Errorf("the export holds %q", never)
			}
		}
		if got := plain.files["media/AliceMedia1"]; got == nil || !bytes.Equal(got.Bytes(), mediaBytes) {
			t.Errorf("media file: %v", got)
		}
		var rooms []struct {
			RoomID           string `json:"room_id"`
			File             string `json:"file"`
			MembershipEvents int    `json:"membership_events"`
			SentEvents       int    `json:"sent_events"`
		}
		if err := json.Unmarshal(plain.files["rooms.json"].Bytes(), &rooms); err != nil || len(rooms) != 2 {
			t.Fatalf("rooms.json: %v %s", err, plain.files["rooms.json"])
		}
		for _, r := range rooms {
			var body struct {
				RoomID           string            `json:"room_id"`
				MembershipEvents []json.RawMessage `json:"membership_events"`
				SentEvents       []json.RawMessage `json:"sent_events"`
			}
			if err := json.Unmarshal(plain.files[r.File].Bytes(), &body); err != nil {
				t.Fatalf("%s: %v", r.File, err)
			}
			if body.RoomID != r.RoomID || len(body.MembershipEvents) != r.MembershipEvents || len(body.SentEvents) != r.SentEvents {
				t.Errorf("%s does not match rooms.json: %+v", r.File, r)
			}
			if r.MembershipEvents != 1 {
				t.Errorf("%s: %d membership events, want 1", r.RoomID, r.MembershipEvents)
			}
		}

		all = string(run(true).all())
		if !strings.Contains(all, "bob answers") || !strings.Contains(all, "bob after alice came") {
			t.Error("the history lacks what alice could see")
		}
		if strings.Contains(all, "bob before alice came") || strings.Contains(all, "alice regrets") {
			t.Error("the history holds what alice could not see")
		}

		for _, who := range []string{"@carol:example.org", "@alice:elsewhere.org", "alice"} {
			if _, err := export.Export(ctx, opts, who, &memSink{}); !errors.Is(err, export.ErrNoSuchUser) {
				t.Errorf("export of %s: %v, want ErrNoSuchUser", who, err)
			}
		}
	})
}
