package media

import (
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// contentSecurityPolicy is Synapse's policy for served media: nothing served from the media
// endpoints can run script or load anything, even when a browser opens it directly.
const contentSecurityPolicy = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
	"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"

// inlineTypes may be served with Content-Disposition: inline: images a browser only ever renders
// as images (not SVG, which can carry script), audio, video and plain text. The spec's list
// (content_repo.md, "Serving inline content") minus the types that browsers interpret (CSS,
// JSON, CSV), to keep the list small; anything else is an attachment.
var inlineTypes = map[string]bool{
	"text/plain": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// normaliseContentType returns the content type to store for an upload: the client's if it
// parses as a media type, else application/octet-stream.
func normaliseContentType(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	return mime.FormatMediaType(mt, params)
}

// isInline reports whether content of this type may be shown inline.
func isInline(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && inlineTypes[mt]
}

// contentDisposition returns the Content-Disposition for serving content of contentType named
// filename (which may be empty): inline only for the safe types, the name per RFC 6266 (a plain
// filename for printable ASCII, and filename* in UTF-8 for anything else).
func contentDisposition(contentType, filename string) string {
	disp := "attachment"
	if isInline(contentType) {
		disp = "inline"
	}
	filename = sanitiseFilename(filename)
	if filename == "" {
		return disp
	}
	if isPlainASCII(filename) {
		return disp + `; filename="` + filename + `"`
	}
	return disp + "; filename*=utf-8''" + rfc5987Escape(filename)
}

// sanitiseFilename drops what a file name must not carry into a header or a save dialog:
// invalid UTF-8, control characters and path separators.
func sanitiseFilename(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "")
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return -1
		}
		return r
	}, name)
	return strings.TrimSpace(name)
}

// isPlainASCII: printable ASCII that needs no escaping inside a quoted string.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '%' {
			return false
		}
	}
	return true
}

// rfc5987Escape percent-encodes everything outside RFC 5987's attr-char.
func rfc5987Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// setServeHeaders sets the headers every served media carries.
func setServeHeaders(h http.Header, contentType, filename string) {
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", contentDisposition(contentType, filename))
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// Lets web clients use the media with cross-origin isolation (spec v1.4).
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
}
