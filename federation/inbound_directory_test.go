package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// directoryRequest sends a request signed by f straight to handler and decodes the answer.
func directoryRequest(t *testing.T, handler http.Handler, f *fakeServer, method, uri string, body []byte, out any) int {
	t.Helper()
	x, err := SignRequest(f.name, "hs1.test", f.key, method, uri, body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(method, uri, bytes.NewReader(body))
	req.Header.Set("Authorization", x.String())
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Body)
	if out != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, uri, err, raw)
		}
	}
	return rec.Code
}

// Inbound /hierarchy and /publicRooms: what a server that has no user in any room may see,
// inaccessible children, suggested_only, and the room's server ACL.
func TestInboundDirectory(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newInboundEnv(t, db)
		ctx := context.Background()
		log := logrus.New()
		log.SetOutput(io.Discard)
		h := NewServer(Config{ServerName: "hs1.test", SigningKey: e.fed.cfg.SigningKey, MaxBodyBytes: 1 << 20,
			KeyRing: e.fed.cfg.KeyRing, Rooms: e.rooms, DB: db, Directory: e.rooms, FederateRoomDirectory: true},
			logrus.NewEntry(log)).Handler()

		const alice = "@alice:hs1.test"
		create := func(req roomserver.CreateRoomRequest) string {
			req.Creator = alice
			id, err := e.rooms.CreateRoom(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		pub := create(roomserver.CreateRoomRequest{Preset: roomserver.PresetPublicChat, Name: "Pub"})
		priv := create(roomserver.CreateRoomRequest{Preset: roomserver.PresetPrivateChat, Name: "Private"})
		child := func(id string, suggested bool) roomserver.StateEvent {
			c, _ := json.Marshal(map[string]any{"via": []string{"hs1.test"}, "suggested": suggested})
			return roomserver.StateEvent{Type: "m.space.child", StateKey: id, Content: c}
		}
		space := create(roomserver.CreateRoomRequest{Preset: roomserver.PresetPublicChat, Name: "Space",
			CreationContent: json.RawMessage(`{"type":"m.space"}`),
			InitialState:    []roomserver.StateEvent{child(pub, true), child(priv, false), child("!unknown:hs1.test", true)}})
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.SetRoomPublished(ctx, pub, true, 1) }); err != nil {
			t.Fatal(err)
		}

		var got roomserver.SpaceHierarchy
		if code := directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/hierarchy/"+esc(space), nil, &got); code != 200 {
			t.Fatalf("hierarchy: %d", code)
		}
		var kids []string
		for _, c := range got.Children {
			kids = append(kids, c.RoomID)
		}
		if got.Room.RoomID != space || got.Room.Name != "Space" || len(got.Room.ChildrenState) != 3 ||
			!slices.Equal(kids, []string{pub}) || !slices.Equal(got.InaccessibleChildren, []string{priv}) {
			t.Fatalf("hierarchy %+v", got)
		}
		got = roomserver.SpaceHierarchy{}
		directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/hierarchy/"+esc(space)+"?suggested_only=true", nil, &got)
		if len(got.Room.ChildrenState) != 2 || len(got.Children) != 1 || len(got.InaccessibleChildren) != 0 {
			t.Fatalf("suggested_only %+v", got)
		}
		if code := directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/hierarchy/"+esc(priv), nil, nil); code != 404 {
			t.Errorf("hierarchy of a private room: %d", code)
		}
		if code := directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/hierarchy/"+esc("!nowhere:hs1.test"), nil, nil); code != 404 {
			t.Errorf("hierarchy of an unknown room: %d", code)
		}

		var page roomserver.PublicRoomsPage
		if code := directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/publicRooms?limit=10", nil, &page); code != 200 ||
			len(page.Chunk) != 1 || page.Chunk[0].RoomID != pub || page.Chunk[0].Name != "Pub" {
			t.Fatalf("publicRooms: %d %+v", code, page)
		}
		page = roomserver.PublicRoomsPage{}
		body := []byte(`{"filter":{"generic_search_term":"nothing like it"}}`)
		if code := directoryRequest(t, h, e.remote, "POST", "/_matrix/federation/v1/publicRooms", body, &page); code != 200 || len(page.Chunk) != 0 {
			t.Fatalf("filtered publicRooms: %d %+v", code, page)
		}
		if code := directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/publicRooms?since=nope", nil, nil); code != 400 {
			t.Errorf("bad token: %d", code)
		}

		// The space's ACL shuts remote.test out of its hierarchy, and only remote.test.
		if _, err := e.rooms.SendEvent(ctx, event.Proto{Type: "m.room.server_acl", StateKey: new(string), Sender: alice, RoomID: space,
			Content: json.RawMessage(`{"allow":["*"],"deny":["remote.test"]}`)}); err != nil {
			t.Fatal(err)
		}
		if code := directoryRequest(t, h, e.remote, "GET", "/_matrix/federation/v1/hierarchy/"+esc(space), nil, nil); code != 403 {
			t.Errorf("hierarchy denied by the ACL: %d", code)
		}
		if code := directoryRequest(t, h, e.other, "GET", "/_matrix/federation/v1/hierarchy/"+esc(space), nil, nil); code != 200 {
			t.Errorf("hierarchy for another server: %d", code)
		}
	})
}
