package clientapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// syncBench is an in-process server with one user in many rooms.
type syncBench struct {
	rooms  *roomserver.Server
	srv    *httptest.Server
	token  string
	userID string
	roomID []string
}

func newSyncBench(b *testing.B, nRooms int) *syncBench {
	b.Helper()
	ctx := context.Background()
	db := storagetest.OpenTestDB(b, storage.SQLite)
	key, err := keys.GenerateSigningKey()
	if err != nil {
		b.Fatal(err)
	}
	rs := roomserver.New(db, "bench.test", key, roomserver.Options{})
	log := logrus.New()
	log.SetOutput(io.Discard)
	api := New(Config{ServerName: "bench.test", DB: db, MaxBodyBytes: 1 << 20, RegistrationEnabled: true, Rooms: rs}, logrus.NewEntry(log))
	srv := httptest.NewServer(api.Handler())
	b.Cleanup(srv.Close)
	sb := &syncBench{rooms: rs, srv: srv}

	body := map[string]any{"username": "bench", "password": "a long benchmark password"}
	first := sb.do(b, "POST", "/_matrix/client/v3/register", body)
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": first["session"]}
	reg := sb.do(b, "POST", "/_matrix/client/v3/register", body)
	sb.token, sb.userID = reg["access_token"].(string), reg["user_id"].(string)
	for i := range nRooms {
		id, err := rs.CreateRoom(ctx, roomserver.CreateRoomRequest{
			Creator: sb.userID, Name: fmt.Sprint("room ", i),
			// Room version 12 ids hash the create event: two made in one millisecond by one
			// user must differ somewhere.
			CreationContent: json.RawMessage(fmt.Sprintf(`{"org.example.bench":%d}`, i)),
		})
		if err != nil {
			b.Fatal(err)
		}
		sb.roomID = append(sb.roomID, id)
	}
	return sb
}

func (sb *syncBench) do(b *testing.B, method, path string, body any) map[string]any {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, sb.srv.URL+path, rd)
	if sb.token != "" {
		req.Header.Set("Authorization", "Bearer "+sb.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != 200 && resp.StatusCode != 401 {
		b.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

func (sb *syncBench) send(b *testing.B, roomID string, i int) {
	content, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": fmt.Sprint("message ", i)})
	if _, err := sb.rooms.SendEvent(context.Background(), event.Proto{Type: "m.room.message", Sender: sb.userID, RoomID: roomID, Content: content}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIncrementalSync500Rooms: a user in 500 rooms syncs incrementally after a message in
// one of them. Only the sync is timed; its cost should follow the one changed room, not the
// 500.
func BenchmarkIncrementalSync500Rooms(b *testing.B) {
	sb := newSyncBench(b, 500)
	since := sb.do(b, "GET", "/_matrix/client/v3/sync", nil)["next_batch"].(string)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		sb.send(b, sb.roomID[i%len(sb.roomID)], i)
		b.StartTimer()
		resp := sb.do(b, "GET", "/_matrix/client/v3/sync?since="+since, nil)
		since = resp["next_batch"].(string)
		if n := len(resp["rooms"].(map[string]any)["join"].(map[string]any)); n != 1 {
			b.Fatalf("incremental sync returned %d rooms, want 1", n)
		}
	}
}

// BenchmarkInitialSync500Rooms is the initial sync of the same user, for comparison.
func BenchmarkInitialSync500Rooms(b *testing.B) {
	sb := newSyncBench(b, 500)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sb.do(b, "GET", "/_matrix/client/v3/sync", nil)
	}
}

// BenchmarkSendToWake measures the time from sending a message to the return of a /sync that
// was long-polling for it (reported as wake-ms; nothing is asserted about it).
func BenchmarkSendToWake(b *testing.B) {
	sb := newSyncBench(b, 10)
	since := sb.do(b, "GET", "/_matrix/client/v3/sync", nil)["next_batch"].(string)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		done := make(chan map[string]any, 1)
		go func() { done <- sb.do(b, "GET", "/_matrix/client/v3/sync?timeout=30000&since="+since, nil) }()
		time.Sleep(20 * time.Millisecond) // let the request start waiting
		start := time.Now()
		sb.send(b, sb.roomID[i%len(sb.roomID)], i)
		resp := <-done
		total += time.Since(start)
		since = resp["next_batch"].(string)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "wake-ms")
}

// BenchmarkInitialSyncLazyMembers: the initial sync, with lazy-loaded members, of a user in
// 300 public rooms of 300 members each (the user and 299 others; each room's timeline ends
// with a message from one of them). The rooms are built once, untimed; b.Loop runs the
// function body once. Set MYELIN_BENCH_MEMBERS to build smaller rooms.
func BenchmarkInitialSyncLazyMembers(b *testing.B) {
	const nRooms = 300
	nMembers := 300
	if s := os.Getenv("MYELIN_BENCH_MEMBERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("MYELIN_BENCH_MEMBERS=%q", s)
		}
		nMembers = n
	}
	sb := newSyncBench(b, 0)
	ctx := context.Background()
	built := time.Now()
	for i := range nRooms {
		id, err := sb.rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{
			Creator: sb.userID, Preset: "public_chat", Name: fmt.Sprint("room ", i),
			CreationContent: json.RawMessage(fmt.Sprintf(`{"org.example.bench":%d}`, i)),
		})
		if err != nil {
			b.Fatal(err)
		}
		sb.roomID = append(sb.roomID, id)
	}
	// Joins are serialised per room and run in parallel across rooms.
	var wg sync.WaitGroup
	errs := make(chan error, nRooms)
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for roomID := range work {
				for m := 1; m < nMembers; m++ {
					if _, err := sb.rooms.Join(ctx, roomID, fmt.Sprintf("@member%d:bench.test", m)); err != nil {
						errs <- err
						return
					}
				}
				if nMembers > 1 {
					content := json.RawMessage(`{"msgtype":"m.text","body":"hello"}`)
					_, err := sb.rooms.SendEvent(ctx, event.Proto{Type: "m.room.message", Sender: "@member1:bench.test", RoomID: roomID, Content: content})
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for _, id := range sb.roomID {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("built %d rooms of %d members in %v", nRooms, nMembers, time.Since(built).Round(time.Second))

	filter := url.QueryEscape(`{"room":{"state":{"lazy_load_members":true}}}`)
	b.ReportAllocs()
	for b.Loop() {
		resp := sb.do(b, "GET", "/_matrix/client/v3/sync?filter="+filter, nil)
		if n := len(resp["rooms"].(map[string]any)["join"].(map[string]any)); n != nRooms {
			b.Fatalf("initial sync returned %d rooms, want %d", n, nRooms)
		}
	}
}
