package sytest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// A real third-party client library, mautrix-go, drives the server with its own requests and
// its own sync loop: two users register (one logs in again), a room is created, the second is
// invited and joins when its sync loop shows the invite, messages go both ways and arrive
// through the library's syncer, and the history reads back through /messages.

// mautrixUser is a mautrix client with its sync loop running and what the loop delivered.
type mautrixUser struct {
	*mautrix.Client
	mu       sync.Mutex
	messages map[id.RoomID][]string
	invites  chan id.RoomID
	changed  chan struct{} // a message arrived
	syncErr  chan error
}

func newMautrixUser(t *testing.T, c *mautrix.Client) *mautrixUser {
	t.Helper()
	u := &mautrixUser{Client: c, messages: map[id.RoomID][]string{}, invites: make(chan id.RoomID, 8),
		changed: make(chan struct{}, 1), syncErr: make(chan error, 1)}
	syncer := mautrix.NewDefaultSyncer()
	syncer.OnEventType(event.EventMessage, func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceTimeline == 0 {
			return
		}
		body := evt.Content.AsMessage().Body
		u.mu.Lock()
		u.messages[evt.RoomID] = append(u.messages[evt.RoomID], body)
		u.mu.Unlock()
		select {
		case u.changed <- struct{}{}:
		default:
		}
	})
	syncer.OnEventType(event.StateMember, func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceInvite != 0 && evt.GetStateKey() == string(c.UserID) &&
			evt.Content.AsMember().Membership == event.MembershipInvite {
			u.invites <- evt.RoomID
		}
	})
	c.Syncer = syncer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.SyncWithContext(ctx); err != nil && !errors.Is(err, context.Canceled) {
			u.syncErr <- err
		}
	}()
	t.Cleanup(func() {
		c.StopSync()
		cancel()
		<-done
	})
	return u
}

// waitMessage waits until the user's sync loop delivered body in room.
func (u *mautrixUser) waitMessage(t *testing.T, room id.RoomID, body string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		u.mu.Lock()
		got := append([]string(nil), u.messages[room]...)
		u.mu.Unlock()
		for _, b := range got {
			if b == body {
				return
			}
		}
		select {
		case <-u.changed:
		case err := <-u.syncErr:
			t.Fatalf("the sync loop of %s stopped: %v", u.UserID, err)
		case <-deadline:
			t.Fatalf("%s never received %q through its sync loop; got %q", u.UserID, body, got)
		}
	}
}

func TestMautrixClient(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		register := func(name string) *mautrix.Client {
			t.Helper()
			c, err := mautrix.NewClient(hs.ClientURL, "", "")
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "correct horse battery"})
			if err != nil {
				t.Fatalf("registering %s: %v", name, err)
			}
			c.SetCredentials(resp.UserID, resp.AccessToken)
			c.DeviceID = resp.DeviceID
			return c
		}
		aliceClient := register("alice")
		versions, err := aliceClient.Versions(ctx)
		if err != nil || !versions.ContainsGreaterOrEqual(mautrix.SpecV11) {
			t.Fatalf("the server does not announce v1.1 to the client library: %+v %v", versions, err)
		}
		register("bob")
		// Bob's client is a second device, logged in with a password.
		bobClient, err := mautrix.NewClient(hs.ClientURL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bobClient.Login(ctx, &mautrix.ReqLogin{
			Type:             mautrix.AuthTypePassword,
			Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"},
			Password:         "correct horse battery",
			StoreCredentials: true,
		}); err != nil {
			t.Fatalf("bob logs in: %v", err)
		}
		if whoami, err := bobClient.Whoami(ctx); err != nil || whoami.UserID != bobClient.UserID {
			t.Fatalf("whoami: %+v %v", whoami, err)
		}

		alice := newMautrixUser(t, aliceClient)
		bob := newMautrixUser(t, bobClient)

		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "through mautrix"})
		if err != nil {
			t.Fatalf("create room: %v", err)
		}
		room := created.RoomID
		if _, err := alice.SendText(ctx, room, "before the invite"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatalf("invite: %v", err)
		}
		select {
		case got := <-bob.invites:
			if got != room {
				t.Fatalf("bob was invited to %s, want %s", got, room)
			}
		case err := <-bob.syncErr:
			t.Fatalf("bob's sync loop stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("bob's sync loop never showed the invite")
		}
		if _, err := bob.JoinRoomByID(ctx, room); err != nil {
			t.Fatalf("bob joins: %v", err)
		}
		joined, err := bob.JoinedRooms(ctx)
		if err != nil || len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != room {
			t.Fatalf("bob's joined rooms: %+v %v", joined, err)
		}

		if _, err := alice.SendText(ctx, room, "hello bob"); err != nil {
			t.Fatal(err)
		}
		bob.waitMessage(t, room, "hello bob")
		if _, err := bob.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{
			MsgType: event.MsgText, Body: "hello alice",
		}); err != nil {
			t.Fatal(err)
		}
		alice.waitMessage(t, room, "hello alice")
		bob.waitMessage(t, room, "hello alice") // the sender's own sync loop sees it too

		// History, newest first, as a client scrolling back reads it. Bob joined after the
		// first message; private_chat's shared history visibility lets him see it.
		msgs, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		var bodies []string
		for _, evt := range msgs.Chunk {
			if evt.Type == event.EventMessage {
				if err := evt.Content.ParseRaw(evt.Type); err != nil {
					t.Fatal(err)
				}
				bodies = append(bodies, evt.Content.AsMessage().Body)
			}
		}
		want := []string{"hello alice", "hello bob", "before the invite"}
		if len(bodies) != len(want) {
			t.Fatalf("history %q, want %q", bodies, want)
		}
		for i := range want {
			if bodies[i] != want[i] {
				t.Fatalf("history %q, want %q", bodies, want)
			}
		}

		// Leaving through the library: the room goes from bob's joined rooms.
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatalf("leave: %v", err)
		}
		if joined, err := bob.JoinedRooms(ctx); err != nil || len(joined.JoinedRooms) != 0 {
			t.Fatalf("bob's joined rooms after leaving: %+v %v", joined, err)
		}
	})
}
