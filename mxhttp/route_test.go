package mxhttp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
)

// A router whose routes are added with Route answers every request as one with plain routes.
func TestRouteMatchesAsGorilla(t *testing.T) {
	templates := []string{
		"/_matrix/client/versions",
		"/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}",
		"/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}",
		"/_matrix/client/v3/rooms/{roomId}/state/{eventType}/",
		"/_matrix/client/v3/rooms/{roomId}/state/{eventType}",
		"/_matrix/client/v3/rooms/{roomId}/state",
		"/_matrix/client/v3/join/{roomIdOrAlias}",
		"/_matrix/client/v3/sync",
		"/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}",
		"/_matrix/client/v3/user/{userId}/filter/f{filterId}",
		"/_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId:.+}",
	}
	build := func(route func(r *mux.Router, tpl string) *mux.Route) *mux.Router {
		r := mux.NewRouter()
		r.UseEncodedPath()
		for i, tpl := range templates {
			method := http.MethodGet
			if i%2 == 1 {
				method = http.MethodPut
			}
			route(r, tpl).Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				fmt.Fprintf(w, "%d %v", i, mux.Vars(req))
			})).Methods(method)
		}
		return r
	}
	plain := build(func(r *mux.Router, tpl string) *mux.Route { return r.Path(tpl) })
	routed := build(Route)
	paths := []string{
		"/_matrix/client/versions", "/_matrix/client/versions/", "/_matrix/client",
		"/_matrix/client/v3/rooms/%21a%3Ax/send/m.room.message/t1",
		"/_matrix/client/v3/rooms/!a:x/send/m.room.message/t%2F1",
		"/_matrix/client/v3/rooms/!a:x/send/m.room.message/",
		"/_matrix/client/v3/rooms/!a:x/send/m.room.message",
		"/_matrix/client/v3/rooms/!a:x/send/m.room.message/t/extra",
		"/_matrix/client/v3/rooms/!a:x/state/m.room.name/", "/_matrix/client/v3/rooms/!a:x/state/m.room.name",
		"/_matrix/client/v3/rooms/!a:x/state/m.room.name/k", "/_matrix/client/v3/rooms/!a:x/state",
		"/_matrix/client/v3/rooms/%21a%3Ax%2Fy/state", "/_matrix/client/v3/rooms//state",
		"/_matrix/client/v3/join/%23alias%3Ax",
		"/_matrix/client/v3/sync", "/_matrix/client/v3/sync/", "/_matrix/client/v3/%73ync",
		"/_matrix/media/v3/download/x/m/a%20b.png",
		"/_matrix/client/v3/user/@u:x/filter/f12", "/_matrix/client/v3/user/@u:x/filter/12",
		"/_matrix/client/v3/pushrules/global/content/a/b", "/_matrix/client/v3/pushrules/global/content/a%2Fb",
		"/", "", "/unknown",
	}
	for _, p := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPost} {
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			plain.ServeHTTP(want, httptest.NewRequest(method, "http://h"+p, nil))
			routed.ServeHTTP(got, httptest.NewRequest(method, "http://h"+p, nil))
			if want.Code != got.Code || want.Body.String() != got.Body.String() {
				t.Errorf("%s %s: plain %d %q, with Route %d %q", method, p, want.Code, want.Body, got.Code, got.Body)
			}
		}
	}
}

func TestSegmentsMatch(t *testing.T) {
	for _, c := range []struct {
		tpl, path string
		want      bool
	}{
		{"/a/{b}/c", "/a/x/c", true},
		{"/a/{b}/c", "/a/x/d", false},
		{"/a/{b}/c", "/a/x/c/", false},
		{"/a/{b}/c", "/a/x", false},
		{"/a/{b}/", "/a/x/", true},
		{"/a/{b}/", "/a/x", false},
		{"/a/f{b}", "/a/f1", true},
		{"", "", true},
		{"/", "/", true},
		{"/", "", false},
	} {
		tpl := []string{}
		if c.tpl != "" || c.path != "" {
			tpl = splitSlash(c.tpl)
		} else {
			tpl = []string{""}
		}
		if got := segmentsMatch(tpl, c.path); got != c.want {
			t.Errorf("%q against %q: %v", c.path, c.tpl, got)
		}
	}
}

func splitSlash(s string) []string {
	out := []string{}
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
