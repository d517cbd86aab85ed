package sytest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "golang.org/x/image/webp"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// The media repository: uploads (direct and asynchronous), authenticated downloads with the
// legacy endpoints frozen for new media, size limits and quotas, thumbnails of each format,
// hostile content served as attachments, remote media across two servers, and a remote media
// request aimed at a private address refused.

// mediaReply is a raw media answer.
type mediaReply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r mediaReply) errcode() string {
	var e struct {
		Code string `json:"errcode"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Code
}

// mediaDo sends a request with a raw body and returns the raw answer.
func mediaDo(t *testing.T, c *Client, method, path string, body []byte, contentType string) mediaReply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return mediaReply{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func mustMedia(t *testing.T, c *Client, want int, method, path string, body []byte, contentType string) mediaReply {
	t.Helper()
	r := mediaDo(t, c, method, path, body, contentType)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %.300s", method, path, r.Status, want, r.Body)
	}
	return r
}

func mustMediaErr(t *testing.T, c *Client, status int, errcode, method, path string, body []byte, contentType string) {
	t.Helper()
	r := mediaDo(t, c, method, path, body, contentType)
	if r.Status != status || r.errcode() != errcode {
		t.Fatalf("%s %s: got %d %s, want %d %s: %.300s", method, path, r.Status, r.errcode(), status, errcode, r.Body)
	}
}

var mxcRE = regexp.MustCompile(`^mxc://([^/]+)/([A-Za-z0-9_-]{24,})$`)

// upload uploads content and returns the server name and media id of its mxc:// URI.
func upload(t *testing.T, c *Client, data []byte, contentType, filename string) (string, string) {
	t.Helper()
	r := mustMedia(t, c, 200, "POST", "/_matrix/media/v3/upload?filename="+url.QueryEscape(filename), data, contentType)
	var out struct {
		URI string `json:"content_uri"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatal(err)
	}
	m := mxcRE.FindStringSubmatch(out.URI)
	if m == nil {
		t.Fatalf("content_uri %q is not an mxc:// URI with a random media id", out.URI)
	}
	return m[1], m[2]
}

func downloadPath(server, id string) string {
	return "/_matrix/client/v1/media/download/" + server + "/" + id
}

func thumbnailPath(server, id string, w, h int, method string) string {
	return "/_matrix/client/v1/media/thumbnail/" + server + "/" + id + "?width=" + strconv.Itoa(w) + "&height=" + strconv.Itoa(h) + "&method=" + method
}

func gradient(w, h int, alpha bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			a := uint8(255)
			if alpha && x < w/2 {
				a = 90
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 200, a})
		}
	}
	return img
}

func encodeImage(t *testing.T, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, nil)
	case "gif":
		err = gif.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decompressionBomb is a PNG that declares 100000 x 100000 pixels (40 GB of RGBA) in a few
// dozen bytes.
func decompressionBomb() []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], 100_000)
	binary.BigEndian.PutUint32(ihdr[4:], 100_000)
	ihdr[8], ihdr[9] = 8, 6
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// checkSafetyHeaders checks what every served media carries.
func checkSafetyHeaders(t *testing.T, h http.Header, wantDisposition string) {
	t.Helper()
	if got := h.Get("Content-Disposition"); !strings.HasPrefix(got, wantDisposition) {
		t.Errorf("Content-Disposition %q, want %s...", got, wantDisposition)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}
	if got := h.Get("Content-Security-Policy"); !strings.HasPrefix(got, "sandbox; default-src 'none'; script-src 'none';") {
		t.Errorf("Content-Security-Policy %q", got)
	}
}

func TestMedia(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"media": map[string]any{
			"max_upload_size": 1 << 20, "user_quota": 3 << 19, "max_pending_uploads": 3,
		}}})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		anon := Anonymous(hs)
		picture := encodeImage(t, "png", gradient(400, 300, false))

		t.Run("upload and authenticated download", func(t *testing.T) {
			server, id := upload(t, alice, picture, "image/png", "cat.png")
			if server != "localhost" {
				t.Fatalf("server name %q", server)
			}
			r := mustMedia(t, bob, 200, "GET", downloadPath(server, id), nil, "")
			if !bytes.Equal(r.Body, picture) {
				t.Fatal("downloaded content differs")
			}
			if r.Header.Get("Content-Type") != "image/png" {
				t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
			}
			checkSafetyHeaders(t, r.Header, `inline; filename="cat.png"`)
			r = mustMedia(t, bob, 200, "GET", downloadPath(server, id)+"/other%20name.png", nil, "")
			checkSafetyHeaders(t, r.Header, `inline; filename="other name.png"`)

			mustMediaErr(t, anon, 401, "M_MISSING_TOKEN", "GET", downloadPath(server, id), nil, "")
			mustMediaErr(t, anon, 401, "M_MISSING_TOKEN", "POST", "/_matrix/media/v3/upload", picture, "image/png")
			// New media is frozen out of the deprecated unauthenticated endpoints.
			mustMediaErr(t, anon, 404, "M_NOT_FOUND", "GET", "/_matrix/media/v3/download/"+server+"/"+id, nil, "")
			mustMediaErr(t, anon, 404, "M_NOT_FOUND", "GET", "/_matrix/media/v3/thumbnail/"+server+"/"+id+"?width=32&height=32", nil, "")
			mustMediaErr(t, bob, 404, "M_NOT_FOUND", "GET", "/_matrix/media/v3/download/"+server+"/"+id, nil, "")

			mustMediaErr(t, bob, 404, "M_NOT_FOUND", "GET", downloadPath(server, "doesnotexist"), nil, "")
			mustMediaErr(t, bob, 404, "M_NOT_FOUND", "GET", downloadPath(server, "..%2F..%2Fetc"), nil, "")
			cfg := bob.Must(t, 200, "GET", "/_matrix/client/v1/media/config", nil)
			if cfg.Body["m.upload.size"] != float64(1<<20) {
				t.Errorf("config: %s", cfg.Raw)
			}
		})

		t.Run("hostile content types are attachments", func(t *testing.T) {
			for _, c := range []struct{ contentType, data string }{
				{"text/html", "<html><script>alert(document.cookie)</script></html>"},
				{"image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`},
				{"application/javascript", "alert(1)"},
				{"", "<script>alert(1)</script>"},
			} {
				server, id := upload(t, alice, []byte(c.data), c.contentType, "evil")
				r := mustMedia(t, bob, 200, "GET", downloadPath(server, id), nil, "")
				checkSafetyHeaders(t, r.Header, "attachment")
				if c.contentType == "" && r.Header.Get("Content-Type") != "application/octet-stream" {
					t.Errorf("no content type served as %q", r.Header.Get("Content-Type"))
				}
			}
		})

		t.Run("size limit", func(t *testing.T) {
			mustMediaErr(t, alice, 413, "M_TOO_LARGE", "POST", "/_matrix/media/v3/upload", make([]byte, 1<<20+1), "application/octet-stream")
			upload(t, alice, make([]byte, 1<<20), "application/octet-stream", "")
		})

		t.Run("quota", func(t *testing.T) {
			carol := Register(t, hs, "carol", "correct horse battery")
			upload(t, carol, bytes.Repeat([]byte{1}, 800<<10), "application/octet-stream", "")
			mustMediaErr(t, carol, 403, "M_FORBIDDEN", "POST", "/_matrix/media/v3/upload", bytes.Repeat([]byte{2}, 800<<10), "application/octet-stream")
			upload(t, carol, []byte("small enough"), "text/plain", "")
		})

		t.Run("asynchronous upload", func(t *testing.T) {
			created := func(c *Client) (string, string) {
				r := c.Must(t, 200, "POST", "/_matrix/media/v1/create", nil)
				if _, ok := r.Body["unused_expires_at"].(float64); !ok {
					t.Fatalf("create: %s", r.Raw)
				}
				m := mxcRE.FindStringSubmatch(r.Str("content_uri"))
				if m == nil {
					t.Fatalf("create: %s", r.Raw)
				}
				return m[1], m[2]
			}
			server, id := created(alice)
			mustMediaErr(t, bob, 504, "M_NOT_YET_UPLOADED", "GET", downloadPath(server, id)+"?timeout_ms=100", nil, "")
			// A download waiting for the content gets it once uploaded.
			got := make(chan mediaReply, 1)
			go func() { got <- mediaDo(t, bob, "GET", downloadPath(server, id)+"?timeout_ms=15000", nil, "") }()
			time.Sleep(300 * time.Millisecond)
			mustMedia(t, bob, 403, "PUT", "/_matrix/media/v3/upload/"+server+"/"+id, []byte("not yours"), "text/plain")
			mustMedia(t, alice, 200, "PUT", "/_matrix/media/v3/upload/"+server+"/"+id+"?filename=late.txt", []byte("worth the wait"), "text/plain")
			if r := <-got; r.Status != 200 || string(r.Body) != "worth the wait" {
				t.Fatalf("waiting download: %d %s", r.Status, r.Body)
			}
			mustMediaErr(t, alice, 409, "M_CANNOT_OVERWRITE_MEDIA", "PUT", "/_matrix/media/v3/upload/"+server+"/"+id, []byte("again"), "text/plain")
			mustMediaErr(t, alice, 404, "M_NOT_FOUND", "PUT", "/_matrix/media/v3/upload/"+server+"/neverCreatedMediaID0123456", []byte("x"), "text/plain")
			// Pending uploads are limited per user.
			for i := 0; i < 3; i++ {
				created(bob)
			}
			bob.MustErr(t, 429, "M_LIMIT_EXCEEDED", "POST", "/_matrix/media/v1/create", nil)
			created(alice)
		})

		t.Run("thumbnails", func(t *testing.T) {
			webp, _ := base64.StdEncoding.DecodeString("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
			type size struct {
				w, h   int
				method string
				wantW  int
				wantH  int
			}
			// A 400x300 source: crops are exact, scales fit the configured size they map to,
			// and a request at least as large as the image gets the image itself.
			sizes := []size{
				{32, 32, "crop", 32, 32}, {96, 96, "crop", 96, 96}, {50, 50, "crop", 96, 96},
				{320, 240, "scale", 320, 240}, {100, 100, "scale", 320, 240},
				{640, 480, "scale", 400, 300}, {800, 600, "scale", 400, 300},
			}
			for _, c := range []struct {
				format, contentType string
				data                []byte
			}{
				{"png", "image/png", picture},
				{"png alpha", "image/png", encodeImage(t, "png", gradient(400, 300, true))},
				{"jpeg", "image/jpeg", encodeImage(t, "jpeg", gradient(400, 300, false))},
				{"gif", "image/gif", encodeImage(t, "gif", gradient(400, 300, false))},
			} {
				server, id := upload(t, alice, c.data, c.contentType, "pic")
				for _, s := range sizes {
					for range 2 { // generated, then cached
						r := mustMedia(t, bob, 200, "GET", thumbnailPath(server, id, s.w, s.h, s.method), nil, "")
						cfg, format, err := image.DecodeConfig(bytes.NewReader(r.Body))
						if err != nil {
							t.Fatalf("%s %dx%d %s: not an image: %v", c.format, s.w, s.h, s.method, err)
						}
						if cfg.Width != s.wantW || cfg.Height != s.wantH {
							t.Errorf("%s %dx%d %s: got %dx%d, want %dx%d", c.format, s.w, s.h, s.method, cfg.Width, cfg.Height, s.wantW, s.wantH)
						}
						if r.Header.Get("Content-Type") != "image/"+format {
							t.Errorf("%s: Content-Type %q for a %s", c.format, r.Header.Get("Content-Type"), format)
						}
						checkSafetyHeaders(t, r.Header, "inline")
					}
				}
			}
			server, id := upload(t, alice, webp, "image/webp", "tiny.webp")
			r := mustMedia(t, bob, 200, "GET", thumbnailPath(server, id, 32, 32, "crop"), nil, "")
			if cfg, _, err := image.DecodeConfig(bytes.NewReader(r.Body)); err != nil || cfg.Width != 1 {
				t.Errorf("webp thumbnail: %v %+v", err, cfg)
			}

			server, id = upload(t, alice, decompressionBomb(), "image/png", "bomb.png")
			mustMediaErr(t, bob, 413, "M_TOO_LARGE", "GET", thumbnailPath(server, id, 32, 32, "crop"), nil, "")
			server, id = upload(t, alice, []byte("just text"), "text/plain", "")
			mustMediaErr(t, bob, 400, "M_UNKNOWN", "GET", thumbnailPath(server, id, 32, 32, "crop"), nil, "")
			server, id = upload(t, alice, []byte("<html>not a png</html>"), "image/png", "")
			mustMediaErr(t, bob, 400, "M_UNKNOWN", "GET", thumbnailPath(server, id, 32, 32, "crop"), nil, "")
			mustMediaErr(t, bob, 400, "M_MISSING_PARAM", "GET", "/_matrix/client/v1/media/thumbnail/"+server+"/"+id, nil, "")
		})
	})
}

// mediaFedPair starts hs1.test and hs2.test under the test CA, each knowing the other, with
// media.allow_private_addresses on (they listen on loopback).
func mediaFedPair(t *testing.T, dbURL string) (hs1, hs2 *Server, ca *CA) {
	t.Helper()
	ca = NewCA(t)
	db := func() string {
		if dbURL == "" {
			return ""
		}
		return storagetest.NewConfig(t, storage.Postgres).URL
	}
	mediaCfg := map[string]any{"allow_private_addresses": true}
	hs1 = Start(t, Options{ServerName: "hs1.test", CA: ca, DatabaseURL: db(), Config: map[string]any{"media": mediaCfg}})
	hs2 = Start(t, Options{ServerName: "hs2.test", CA: ca, DatabaseURL: db(), Config: map[string]any{
		"media":      mediaCfg,
		"federation": map[string]any{"static_hosts": map[string]string{"hs1.test": fedAddr(hs1)}},
	}})
	setStaticHost(t, hs1, "hs2.test", fedAddr(hs2))
	hs1.Restart(t)
	return hs1, hs2, ca
}

func TestMediaFederation(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, ca := mediaFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		avatar := encodeImage(t, "jpeg", gradient(256, 256, false))
		server, id := upload(t, alice, avatar, "image/jpeg", "me.jpg")
		if server != "hs1.test" {
			t.Fatalf("server %q", server)
		}

		// bob's server fetches alice's avatar from hs1 and serves it and its thumbnail.
		r := mustMedia(t, bob, 200, "GET", downloadPath(server, id), nil, "")
		if !bytes.Equal(r.Body, avatar) {
			t.Fatal("remote media differs from the upload")
		}
		checkSafetyHeaders(t, r.Header, `inline; filename="me.jpg"`)
		r = mustMedia(t, bob, 200, "GET", thumbnailPath(server, id, 96, 96, "crop"), nil, "")
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(r.Body)); err != nil || cfg.Width != 96 || cfg.Height != 96 {
			t.Fatalf("remote thumbnail: %v %+v", err, cfg)
		}
		// allow_remote=false does not fetch what is not cached.
		_, other := upload(t, alice, []byte("another"), "text/plain", "")
		mustMediaErr(t, bob, 404, "M_NOT_FOUND", "GET", downloadPath(server, other)+"?allow_remote=false", nil, "")
		mustMediaErr(t, bob, 404, "M_NOT_FOUND", "GET", downloadPath(server, "noSuchMediaOnHs1xxxxxxxxx"), nil, "")

		// The federation endpoint needs a signed request.
		fc := FederationClient(ca)
		fc.Transport.(*http.Transport).TLSClientConfig.ServerName = "hs1.test"
		resp, err := fc.Get(hs1.FederationURL + "/_matrix/federation/v1/media/download/" + id)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("unsigned federation media request: %d", resp.StatusCode)
		}

		// Cached: served with hs1 gone.
		hs1.Stop()
		r = mustMedia(t, bob, 200, "GET", downloadPath(server, id), nil, "")
		if !bytes.Equal(r.Body, avatar) {
			t.Fatal("cached remote media differs")
		}
		mustMedia(t, bob, 200, "GET", thumbnailPath(server, id, 32, 32, "crop"), nil, "")
	})
}

func TestMediaRemotePrivateAddressRefused(t *testing.T) {
	// A "remote server" on loopback that counts connections; the server must never connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		// Federation may reach loopback (the harness allows it); media may not.
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{
			"media":      map[string]any{"allow_private_addresses": false},
			"federation": map[string]any{"static_hosts": map[string]string{"evil.test": ln.Addr().String()}},
		}})
		bob := Register(t, hs, "bob", "correct horse battery")
		mustMediaErr(t, bob, 502, "M_UNKNOWN", "GET", downloadPath("evil.test", "someMediaIdOnAPrivateHost"), nil, "")
		mustMediaErr(t, bob, 502, "M_UNKNOWN", "GET", downloadPath("127.0.0.1:"+portOf(ln), "someMediaIdOnAPrivateHost"), nil, "")
		mustMediaErr(t, bob, 502, "M_UNKNOWN", "GET", thumbnailPath("evil.test", "someMediaIdOnAPrivateHost", 32, 32, "crop"), nil, "")
		if n := accepted.Load(); n != 0 {
			t.Fatalf("the server connected to a private address %d times", n)
		}
	})
}

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
