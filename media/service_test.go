package media

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// fakeRemote sends "signed" requests to one test server for every destination.
type fakeRemote struct{ base string }

func (f fakeRemote) GetMedia(ctx context.Context, _, uri string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+uri, nil)
	return http.DefaultClient.Do(req)
}

func (f fakeRemote) GetURL(ctx context.Context, url string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	return http.DefaultClient.Do(req)
}

func testAuth(r *http.Request) (string, error) {
	if u := r.Header.Get("X-Test-User"); u != "" {
		return u, nil
	}
	return "", mxhttp.MissingToken()
}

func newTestService(t *testing.T, db *storage.DB, cfg Config) (*Service, *httptest.Server) {
	t.Helper()
	cfg.DB, cfg.Dir = db, filepath.Join(t.TempDir(), "media")
	if cfg.ServerName == "" {
		cfg.ServerName = "here.test"
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := New(cfg, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.ClientHandler(testAuth))
	t.Cleanup(srv.Close)
	return s, srv
}

func get(t *testing.T, url, user string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func uploadTo(t *testing.T, srv *httptest.Server, user string, data []byte, contentType string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/_matrix/media/v3/upload", bytes.NewReader(data))
	req.Header.Set("X-Test-User", user)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		URI string `json:"content_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload: %d %v", resp.StatusCode, err)
	}
	return strings.TrimPrefix(out.URI, "mxc://")
}

// multipartAnswer writes a federation media answer whose content part has the given header
// and body.
func multipartAnswer(w http.ResponseWriter, part textproto.MIMEHeader, body string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	meta, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	meta.Write([]byte("{}"))
	p, _ := mw.CreatePart(part)
	p.Write([]byte(body))
	mw.Close()
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.Write(b.Bytes())
}

func TestRemoteMedia(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Disposition", `attachment; filename="redirected.txt"`)
			io.WriteString(w, "behind a redirect")
		}))
		defer target.Close()
		origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/_matrix/federation/v1/media/download/direct":
				multipartAnswer(w, textproto.MIMEHeader{"Content-Type": {"text/plain"},
					"Content-Disposition": {"inline; filename*=utf-8''caf%C3%A9.txt"}}, "direct content")
			case "/_matrix/federation/v1/media/download/located":
				multipartAnswer(w, textproto.MIMEHeader{"Location": {target.URL + "/file"}}, "")
			case "/_matrix/federation/v1/media/download/huge":
				multipartAnswer(w, textproto.MIMEHeader{"Content-Type": {"application/octet-stream"}}, strings.Repeat("x", 5000))
			case "/_matrix/federation/v1/media/download/old":
				mxhttp.WriteError(w, r, mxhttp.Unrecognized("unrecognized request"))
			case "/_matrix/media/v3/download/there.test/old":
				if r.URL.Query().Get("allow_remote") != "false" {
					t.Errorf("legacy fallback without allow_remote=false: %s", r.URL)
				}
				w.Header().Set("Content-Type", "image/png")
				io.WriteString(w, "legacy content")
			default:
				mxhttp.WriteError(w, r, mxhttp.NotFound("no such media"))
			}
		}))
		defer origin.Close()
		s, srv := newTestService(t, db, Config{Remote: fakeRemote{origin.URL}, MaxUploadSize: 4096})

		for _, c := range []struct {
			id, body, contentType, disposition string
		}{
			{"direct", "direct content", "text/plain", "inline; filename*=utf-8''caf%C3%A9.txt"},
			{"located", "behind a redirect", "text/plain", `inline; filename="redirected.txt"`},
			{"old", "legacy content", "image/png", "inline"},
		} {
			for range 2 { // fetched, then cached
				status, h, body := get(t, srv.URL+"/_matrix/client/v1/media/download/there.test/"+c.id, "@u:here.test")
				if status != 200 || string(body) != c.body || h.Get("Content-Type") != c.contentType || h.Get("Content-Disposition") != c.disposition {
					t.Errorf("%s: %d %q %q %q", c.id, status, body, h.Get("Content-Type"), h.Get("Content-Disposition"))
				}
			}
		}
		if status, _, body := get(t, srv.URL+"/_matrix/client/v1/media/download/there.test/huge", "@u:here.test"); status != 502 || !strings.Contains(string(body), "M_TOO_LARGE") {
			t.Errorf("too large remote media: %d %s", status, body)
		}
		if status, _, _ := get(t, srv.URL+"/_matrix/client/v1/media/download/there.test/missing", "@u:here.test"); status != 404 {
			t.Errorf("missing remote media: %d", status)
		}

		// Remote media unused for the cache lifetime is deleted with its file; local media stays.
		local := uploadTo(t, srv, "@u:here.test", []byte("local content"), "text/plain")
		m, err := storage.GetMedia(context.Background(), db, "there.test", "direct")
		if err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return time.Now().Add(DefaultRemoteCacheLifetime + time.Hour) }
		n, err := s.CleanUp(context.Background())
		if err != nil || n != 3 {
			t.Fatalf("CleanUp = %d, %v; want the 3 remote media", n, err)
		}
		if _, err := os.Stat(s.files.path(m.ContentHash)); !os.IsNotExist(err) {
			t.Errorf("file of deleted remote media: %v", err)
		}
		s.now = time.Now
		if status, _, _ := get(t, srv.URL+"/_matrix/client/v1/media/download/"+local, "@u:here.test"); status != 200 {
			t.Errorf("local media after clean-up: %d", status)
		}
	})
}

func TestLegacyAndErasure(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s, srv := newTestService(t, db, Config{LegacyUnauthenticated: true})
		same := []byte("the same bytes")
		mine := uploadTo(t, srv, "@erased:here.test", same, "text/plain")
		other := uploadTo(t, srv, "@kept:here.test", same, "text/plain")
		uploadTo(t, srv, "@erased:here.test", []byte("only mine"), "text/plain")

		// Media from before authenticated media (marked in the database) stays on the legacy
		// endpoints; new uploads are not there.
		old := storage.Media{Origin: "here.test", MediaID: "fromBeforeTheFreeze", Size: int64(len(same)), ContentType: "text/plain",
			CreatedTS: 1, UploadedTS: 1, LastAccessTS: 1, LegacyUnauthenticated: true}
		m, _ := storage.GetMedia(ctx, db, "here.test", strings.TrimPrefix(other, "here.test/"))
		old.ContentHash = m.ContentHash
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertMedia(ctx, old) }); err != nil {
			t.Fatal(err)
		}
		if status, _, body := get(t, srv.URL+"/_matrix/media/v3/download/here.test/fromBeforeTheFreeze", ""); status != 200 || !bytes.Equal(body, same) {
			t.Errorf("legacy media on the legacy endpoint: %d %s", status, body)
		}
		if status, _, _ := get(t, srv.URL+"/_matrix/media/v3/download/"+mine, ""); status != 404 {
			t.Errorf("new media on the legacy endpoint: %d", status)
		}
		s.cfg.LegacyUnauthenticated = false
		if status, _, _ := get(t, srv.URL+"/_matrix/media/v3/download/here.test/fromBeforeTheFreeze", ""); status != 404 {
			t.Errorf("legacy endpoint switched off: %d", status)
		}

		n, err := s.DeleteUserMedia(ctx, "@erased:here.test")
		if err != nil || n != 2 {
			t.Fatalf("DeleteUserMedia = %d, %v", n, err)
		}
		if status, _, _ := get(t, srv.URL+"/_matrix/client/v1/media/download/"+mine, "@u:here.test"); status != 404 {
			t.Errorf("erased media: %d", status)
		}
		// The file is shared by content hash with another user's upload, which stays.
		if status, _, body := get(t, srv.URL+"/_matrix/client/v1/media/download/"+other, "@u:here.test"); status != 200 || !bytes.Equal(body, same) {
			t.Errorf("other user's identical media: %d %s", status, body)
		}
	})
}
