package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// The spec's example of "Ordering of children within a space".
func TestSortSpaceChildrenSpecExample(t *testing.T) {
	child := func(key string, ts int64, content string) SpaceChild {
		return SpaceChild{Type: "m.space.child", StateKey: key, OriginServerTS: ts, Content: json.RawMessage(content)}
	}
	children := []SpaceChild{
		child("!b:example.org", 1640341000000, `{"order":" ","via":["example.org"]}`),
		child("!a:example.org", 1640141000000, `{"order":"aaaa","via":["example.org"]}`),
		child("!c:example.org", 1640841000000, `{"order":"first","via":["example.org"]}`),
		child("!e:example.org", 1640641000000, `{"via":["example.org"]}`),
		child("!d:example.org", 1640741000000, `{"via":["example.org"]}`),
		// an invalid order (too long, a control character, not a string) counts as none
		child("!f:example.org", 1640641000000, `{"order":"\u0001","via":["example.org"]}`),
		child("!g:example.org", 1640041000000, `{"order":7,"via":["example.org"]}`),
	}
	SortSpaceChildren(children)
	var got []string
	for _, c := range children {
		got = append(got, c.StateKey)
	}
	want := []string{"!b:example.org", "!a:example.org", "!c:example.org", "!g:example.org", "!e:example.org", "!f:example.org", "!d:example.org"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestSpaceChildParse(t *testing.T) {
	for _, tc := range []struct {
		content   string
		ok, sugg  bool
		wantOrder string
	}{
		{`{"via":["a.org"],"suggested":true,"order":"x"}`, true, true, "x"},
		{`{"via":["a.org"],"suggested":"yes"}`, true, false, ""},
		{`{"via":[]}`, false, false, ""},
		{`{}`, false, false, ""},
		{`not json`, false, false, ""},
	} {
		p, ok := SpaceChild{Content: json.RawMessage(tc.content)}.Parse()
		if ok != tc.ok || p.Suggested != tc.sugg || p.Order != tc.wantOrder {
			t.Errorf("%s: %+v %v", tc.content, p, ok)
		}
	}
}

func TestPlainTopicAndJoinRules(t *testing.T) {
	for content, want := range map[string]string{
		`{"topic":"beer"}`: "beer",
		`{"topic":"","m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"},{"body":"plain"}]}}`: "plain",
		`{"m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"}]}}`:                             "",
	} {
		if got := plainTopic([]byte(content)); got != want {
			t.Errorf("plainTopic(%s) = %q, want %q", content, got, want)
		}
	}
	rule, allowed := parseJoinRules([]byte(`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!a:x"},{"type":"other"}]}`))
	if rule != "restricted" || !slices.Equal(allowed, []string{"!a:x"}) {
		t.Errorf("restricted: %s %v", rule, allowed)
	}
	if rule, allowed := parseJoinRules([]byte(`{"join_rule":"public","allow":[{"type":"m.room_membership","room_id":"!a:x"}]}`)); rule != "public" || allowed != nil {
		t.Errorf("public: %s %v", rule, allowed)
	}
}

func TestPublicRoomsRequestQuery(t *testing.T) {
	neg := -1
	if _, _, err := (PublicRoomsRequest{Limit: &neg}).Query(); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative limit: %v", err)
	}
	if _, _, err := (PublicRoomsRequest{IncludeAllNetworks: true, ThirdPartyInstanceID: "irc"}).Query(); !errors.Is(err, ErrInvalid) {
		t.Errorf("network with include_all_networks: %v", err)
	}
	if _, third, err := (PublicRoomsRequest{ThirdPartyInstanceID: "irc"}).Query(); err != nil || !third {
		t.Errorf("network: %v %v", third, err)
	}
	var req PublicRoomsRequest
	if err := json.Unmarshal([]byte(`{"filter":{"room_types":[null,"m.space"]}}`), &req); err != nil {
		t.Fatal(err)
	}
	q, _, _ := req.Query()
	if len(q.RoomTypes) != 2 || q.RoomTypes[0] != nil || *q.RoomTypes[1] != "m.space" {
		t.Errorf("room_types %v", q.RoomTypes)
	}
	for _, bad := range []string{"", "!!!", "eDE", directoryToken('n', directoryPos{1, "!r:x"})[1:]} {
		if _, _, err := parseDirectoryToken(bad); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

// The directory over real rooms: order by joined members, paging both ways with tokens,
// filters, and summaries of every field.
func TestPublicRoomsAndSummaries(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		// big: alice, bob, carol; mid: alice, bob; space: alice; hidden: never published.
		big := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, Name: "Big Pub", Topic: "beer and more"})
		mid := mustCreate(t, s, CreateRoomRequest{Preset: PresetPrivateChat, Name: "Middle", Topic: "wine"})
		space := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, Name: "A Space", Alias: "#space:example.org",
			CreationContent: json.RawMessage(`{"type":"m.space"}`),
			InitialState: []StateEvent{
				{Type: "m.space.child", StateKey: big, Content: json.RawMessage(`{"via":["example.org"],"suggested":true}`)},
				{Type: "m.space.child", StateKey: mid, Content: json.RawMessage(`{"via":["example.org"],"order":"a"}`)},
				{Type: "m.space.child", StateKey: "!gone:example.org", Content: json.RawMessage(`{}`)},
			}})
		hidden := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, Name: "Big Pub too"})
		for _, j := range []struct{ room, user string }{{big, bob}, {big, carol}, {hidden, bob}} {
			if _, err := s.Join(ctx, j.room, j.user); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Invite(ctx, mid, alice, bob, "", false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Join(ctx, mid, bob); err != nil {
			t.Fatal(err)
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, r := range []string{space, mid, big} {
				if err := tx.SetRoomPublished(ctx, r, true, 1); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		ids := func(p PublicRoomsPage) []string {
			var out []string
			for _, r := range p.Chunk {
				out = append(out, r.RoomID)
			}
			return out
		}
		all, err := s.PublicRooms(ctx, PublicRoomsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(all); !slices.Equal(got, []string{big, mid, space}) || all.Total != 3 || all.NextBatch != "" || all.PrevBatch != "" {
			t.Fatalf("directory %v total %d next %q prev %q", got, all.Total, all.NextBatch, all.PrevBatch)
		}
		b := all.Chunk[0]
		if b.NumJoinedMembers != 3 || b.Name != "Big Pub" || b.Topic != "beer and more" || b.JoinRule != "public" || b.GuestCanJoin || b.WorldReadable {
			t.Errorf("big room chunk %+v", b)
		}

		// Pages of one, forwards to the end and back to the start.
		p1, _ := s.PublicRooms(ctx, PublicRoomsQuery{Limit: 1})
		p2, _ := s.PublicRooms(ctx, PublicRoomsQuery{Limit: 1, Since: p1.NextBatch})
		p3, _ := s.PublicRooms(ctx, PublicRoomsQuery{Limit: 1, Since: p2.NextBatch})
		if !slices.Equal(ids(p1), []string{big}) || !slices.Equal(ids(p2), []string{mid}) || !slices.Equal(ids(p3), []string{space}) {
			t.Fatalf("pages %v %v %v", ids(p1), ids(p2), ids(p3))
		}
		if p1.PrevBatch != "" || p3.NextBatch != "" || p2.PrevBatch == "" {
			t.Errorf("page tokens: p1 prev %q, p3 next %q, p2 prev %q", p1.PrevBatch, p3.NextBatch, p2.PrevBatch)
		}
		back, _ := s.PublicRooms(ctx, PublicRoomsQuery{Limit: 1, Since: p3.PrevBatch})
		if !slices.Equal(ids(back), []string{mid}) || back.NextBatch == "" || back.PrevBatch == "" {
			t.Errorf("back from the last page: %v next %q prev %q", ids(back), back.NextBatch, back.PrevBatch)
		}
		first, _ := s.PublicRooms(ctx, PublicRoomsQuery{Limit: 5, Since: back.PrevBatch})
		if !slices.Equal(ids(first), []string{big}) || first.PrevBatch != "" {
			t.Errorf("back to the start: %v prev %q", ids(first), first.PrevBatch)
		}
		if _, err := s.PublicRooms(ctx, PublicRoomsQuery{Since: "nonsense"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad token: %v", err)
		}

		// Filters: search over name, topic and alias; room types with null for untyped.
		for term, want := range map[string][]string{"WINE": {mid}, "pub": {big}, "#SPACE": {space}, "nothing": nil} {
			p, _ := s.PublicRooms(ctx, PublicRoomsQuery{SearchTerm: term})
			if !slices.Equal(ids(p), want) {
				t.Errorf("search %q: %v, want %v", term, ids(p), want)
			}
		}
		spaceType := RoomTypeSpace
		if p, _ := s.PublicRooms(ctx, PublicRoomsQuery{RoomTypes: []*string{&spaceType}}); !slices.Equal(ids(p), []string{space}) {
			t.Errorf("spaces: %v", ids(p))
		}
		if p, _ := s.PublicRooms(ctx, PublicRoomsQuery{RoomTypes: []*string{nil}}); !slices.Equal(ids(p), []string{big, mid}) {
			t.Errorf("untyped: %v", ids(p))
		}

		// Every field of a summary, and a space's children in the spec's order.
		sum, err := s.RoomSummary(ctx, mid)
		if err != nil {
			t.Fatal(err)
		}
		if sum.JoinRule != "invite" || sum.Encryption != "m.megolm.v1.aes-sha2" || sum.RoomVersion == "" || sum.NumJoinedMembers != 2 || len(sum.ChildrenState) != 0 {
			t.Errorf("private room summary %+v", sum)
		}
		sp, err := s.RoomSummary(ctx, space)
		if err != nil {
			t.Fatal(err)
		}
		if sp.RoomType != RoomTypeSpace || sp.CanonicalAlias != "#space:example.org" || len(sp.ChildrenState) != 2 ||
			sp.ChildrenState[0].StateKey != mid || sp.ChildrenState[1].StateKey != big || sp.ChildrenState[0].Sender != alice {
			t.Errorf("space summary %+v", sp)
		}
		if _, err := s.RoomSummary(ctx, "!unknown:example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown room: %v", err)
		}

		// Who may preview: carol is in no room but the public one.
		carolView := s.UserPreviewer(carol)
		if _, ok, _ := MayPreview(ctx, &sum.RoomSummary, carolView); ok {
			t.Error("carol previews a private room")
		}
		if m, ok, _ := MayPreview(ctx, &sum.RoomSummary, s.UserPreviewer(bob)); !ok || m != "join" {
			t.Errorf("bob, a member: %s %v", m, ok)
		}
		if _, ok, _ := MayPreview(ctx, &sp.RoomSummary, nil); !ok {
			t.Error("anyone previews a public space")
		}
		restricted := sum.RoomSummary
		restricted.JoinRule, restricted.AllowedRoomIDs = "restricted", []string{big}
		if _, ok, _ := MayPreview(ctx, &restricted, carolView); !ok {
			t.Error("carol, in an allowed room, previews a restricted room")
		}
		restricted.AllowedRoomIDs = []string{space}
		if _, ok, _ := MayPreview(ctx, &restricted, carolView); ok {
			t.Error("carol previews a restricted room whose allowed room she is not in")
		}
		if _, ok, _ := MayPreview(ctx, &sum.RoomSummary, s.ServerPreviewer("example.org")); !ok {
			t.Error("a server with a member previews the room")
		}
		if _, ok, _ := MayPreview(ctx, &sum.RoomSummary, s.ServerPreviewer("elsewhere.org")); ok {
			t.Error("a server without members previews a private room")
		}
	})
}
