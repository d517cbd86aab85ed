package media

import (
	"net/http"
	"testing"
)

func TestContentDisposition(t *testing.T) {
	for _, c := range []struct {
		contentType, filename, want string
	}{
		{"image/png", "cat.png", `inline; filename="cat.png"`},
		{"image/jpeg", "", "inline"},
		{"text/plain; charset=utf-8", "notes.txt", `inline; filename="notes.txt"`},
		{"video/mp4", "a.mp4", `inline; filename="a.mp4"`},
		{"audio/ogg", "a.ogg", `inline; filename="a.ogg"`},
		// What a browser would interpret is an attachment.
		{"text/html", "page.html", `attachment; filename="page.html"`},
		{"image/svg+xml", "x.svg", `attachment; filename="x.svg"`},
		{"application/javascript", "x.js", `attachment; filename="x.js"`},
		{"text/css", "x.css", `attachment; filename="x.css"`},
		{"application/xhtml+xml", "", "attachment"},
		{"application/octet-stream", "", "attachment"},
		{"not a type", "x", `attachment; filename="x"`},
		{"TEXT/HTML", "", "attachment"},
		// RFC 6266: non-ASCII names travel as UTF-8 in filename*.
		{"image/png", "chat é.png", "inline; filename*=utf-8''chat%20%C3%A9.png"},
		{"application/pdf", `a"b.pdf`, "attachment; filename*=utf-8''a%22b.pdf"},
		{"application/pdf", "100%.pdf", "attachment; filename*=utf-8''100%25.pdf"},
		// Header injection and paths are stripped.
		{"application/pdf", "a\r\nSet-Cookie: x.pdf", `attachment; filename="aSet-Cookie: x.pdf"`},
		{"application/pdf", "../../etc/passwd", `attachment; filename="....etcpasswd"`},
	} {
		if got := contentDisposition(c.contentType, c.filename); got != c.want {
			t.Errorf("contentDisposition(%q, %q) = %s, want %s", c.contentType, c.filename, got, c.want)
		}
	}
}

func TestNormaliseContentType(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "application/octet-stream",
		"image/PNG":                 "image/png",
		"text/plain; charset=UTF-8": "text/plain; charset=UTF-8",
		"text/html\r\nX-Evil: 1":    "application/octet-stream",
		"garbage":                   "application/octet-stream",
	} {
		if got := normaliseContentType(in); got != want {
			t.Errorf("normaliseContentType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServeHeaders(t *testing.T) {
	h := http.Header{}
	setServeHeaders(h, "text/html", "x.html")
	for k, want := range map[string]string{
		"Content-Type":           "text/html",
		"Content-Disposition":    `attachment; filename="x.html"`,
		"X-Content-Type-Options": "nosniff",
		"Content-Security-Policy": "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
			"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
