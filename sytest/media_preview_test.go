package sytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// URL previews: off by default; when on, OpenGraph data of a page on a (loopback) web site with
// its image stored as media, a title and description fallback, an image URL previewed as
// itself, previews reused from memory, denied hosts and private addresses refused, and bad
// parameters answered with Matrix errors.

func previewPath(u string) string {
	return "/_matrix/client/v1/media/preview_url?url=" + url.QueryEscape(u)
}

// previewSite is a small web site; hits counts the requests it answered per path.
func previewSite(t *testing.T, picture []byte) (*httptest.Server, map[string]*atomic.Int32) {
	hits := map[string]*atomic.Int32{}
	for _, p := range []string{"/og", "/plain", "/picture.png", "/file.bin", "/gone", "/latin1"} {
		hits[p] = &atomic.Int32{}
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := hits[r.URL.Path]; c != nil {
			c.Add(1)
		}
		switch r.URL.Path {
		case "/og":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><html><head><title>Ignored title</title>
<meta property="og:title" content="Myelin &amp; the nerves">
<meta property="og:description" content="A homeserver — private by design.">
<meta property="og:image" content="/picture.png"><meta property="og:image:width" content="9999">
<meta property="og:site_name" content="Example"></head><body><p>text</p></body></html>`)
		case "/plain":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<html><head><title>
  Just a   title </title><meta name="description" content="Described."></head></html>`)
		case "/latin1":
			w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
			w.Write([]byte("<html><head><title>Caf\xe9</title></head></html>"))
		case "/picture.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(picture)
		case "/file.bin":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte("binary"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(site.Close)
	return site, hits
}

func TestURLPreview(t *testing.T) {
	picture := encodeImage(t, "png", gradient(120, 80, false))
	site, hits := previewSite(t, picture)
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"media": map[string]any{
			"allow_private_addresses": true,
			"url_preview":             map[string]any{"enabled": true, "denied_hosts": []string{"*.denied.test"}},
		}}})
		alice := Register(t, hs, "alice", "correct horse battery")

		preview := func(u string) map[string]any {
			t.Helper()
			r := mustMedia(t, alice, 200, "GET", previewPath(u), nil, "")
			var og map[string]any
			if err := json.Unmarshal(r.Body, &og); err != nil {
				t.Fatalf("preview of %s: %v", u, err)
			}
			return og
		}

		og := preview(site.URL + "/og#fragment")
		if og["og:title"] != "Myelin & the nerves" || og["og:description"] != "A homeserver — private by design." ||
			og["og:site_name"] != "Example" {
			t.Fatalf("OpenGraph preview: %v", og)
		}
		mxc, _ := og["og:image"].(string)
		if !strings.HasPrefix(mxc, "mxc://"+hs.Name+"/") || og["og:image:type"] != "image/png" ||
			og["og:image:width"] != float64(120) || og["og:image:height"] != float64(80) ||
			og["matrix:image:size"] != float64(len(picture)) {
			t.Fatalf("preview image: %v", og)
		}
		got := mustMedia(t, alice, 200, "GET", downloadPath(hs.Name, strings.TrimPrefix(mxc, "mxc://"+hs.Name+"/")), nil, "")
		if !bytes.Equal(got.Body, picture) {
			t.Fatal("the preview image served differs from the site's")
		}

		// Reused from memory: the site is not asked again (the fragment is not part of the key).
		before := hits["/og"].Load()
		if again := preview(site.URL + "/og"); again["og:title"] != og["og:title"] {
			t.Fatalf("cached preview differs: %v", again)
		}
		if hits["/og"].Load() != before {
			t.Fatal("a cached preview fetched the page again")
		}

		if og := preview(site.URL + "/plain"); og["og:title"] != "Just a title" || og["og:description"] != "Described." || og["og:image"] != nil {
			t.Fatalf("fallback preview: %v", og)
		}
		if og := preview(site.URL + "/latin1"); og["og:title"] != "Café" {
			t.Fatalf("charset preview: %v", og)
		}
		if og := preview(site.URL + "/picture.png"); og["og:image:width"] != float64(120) || og["og:image"] == nil {
			t.Fatalf("image preview: %v", og)
		}
		if og := preview(site.URL + "/file.bin"); len(og) != 0 {
			t.Fatalf("binary preview: %v", og)
		}

		mustMediaErr(t, alice, 502, "M_UNKNOWN", "GET", previewPath(site.URL+"/gone"), nil, "")
		mustMediaErr(t, alice, 400, "M_MISSING_PARAM", "GET", "/_matrix/client/v1/media/preview_url", nil, "")
		mustMediaErr(t, alice, 400, "M_INVALID_PARAM", "GET", previewPath("ftp://example.org/file"), nil, "")
		mustMediaErr(t, alice, 400, "M_INVALID_PARAM", "GET", previewPath("https://user:pw@example.org/"), nil, "")
		mustMediaErr(t, alice, 400, "M_INVALID_PARAM", "GET", previewPath(site.URL+"/og")+"&ts=yesterday", nil, "")
		mustMediaErr(t, alice, 403, "M_FORBIDDEN", "GET", previewPath("http://www.denied.test/"), nil, "")
		mustMediaErr(t, Anonymous(hs), 401, "M_MISSING_TOKEN", "GET", previewPath(site.URL+"/og"), nil, "")
	})
}

func TestURLPreviewRefusals(t *testing.T) {
	site, hits := previewSite(t, nil)
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		// Off by default.
		hs := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, hs, "alice", "correct horse battery")
		mustMediaErr(t, alice, 403, "M_FORBIDDEN", "GET", previewPath(site.URL+"/plain"), nil, "")

		// On, but the site is on a private address and media may not reach those.
		db2 := ""
		if dbURL != "" {
			db2 = storagetest.NewConfig(t, storage.Postgres).URL
		}
		hs2 := Start(t, Options{DatabaseURL: db2, Config: map[string]any{"media": map[string]any{
			"url_preview": map[string]any{"enabled": true},
		}}})
		bob := Register(t, hs2, "bob", "correct horse battery")
		mustMediaErr(t, bob, 502, "M_UNKNOWN", "GET", previewPath(site.URL+"/plain"), nil, "")
		if n := hits["/plain"].Load(); n != 0 {
			t.Fatalf("the site was fetched %d times", n)
		}
	})
}
