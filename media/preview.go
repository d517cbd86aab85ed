package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"

	"myelin/mxhttp"
	"myelin/storage"
)

// URL previews (GET /_matrix/client/v1/media/preview_url) make the server fetch what its users
// link to, which tells the server, and the linked site, what they read. They are off unless the
// operator turns them on, and then:
//   - the server fetches through the Remote's connections, which refuse loopback, private and
//     link-local addresses (after DNS resolution, on every redirect) unless allowed, and hosts
//     the operator denied are refused before any lookup;
//   - previews are cached in memory only, for a short time: the database never records which
//     URLs were previewed or by whom;
//   - a preview image is stored as media with no uploader, served like any media to
//     authenticated users, and deleted when unread for the remote cache lifetime;
//   - pages and images are read only up to a bound, and a few fetches run at once.
const (
	// previewMaxPage bounds the bytes of a page read for its metadata.
	previewMaxPage = 1 << 20
	// previewMaxImage bounds the preview image stored (and MaxUploadSize, if lower).
	previewMaxImage = 10 << 20
	// previewTimeout bounds a whole preview: page and image.
	previewTimeout = 20 * time.Second
	// previewCacheEntries bounds the previews held in memory.
	previewCacheEntries = 1000
	// previewFetches bounds the previews fetched at once.
	previewFetches = 4
	// DefaultURLPreviewCacheLifetime is how long a preview is reused.
	DefaultURLPreviewCacheLifetime = time.Hour
	// maxPreviewValue bounds each string value of a preview.
	maxPreviewValue = 2000
)

// previewCache holds recent previews in memory, keyed by URL (without fragment).
type previewCache struct {
	mu      sync.Mutex
	entries map[string]previewEntry
}

type previewEntry struct {
	preview map[string]any
	expires time.Time
}

func (c *previewCache) get(key string, now time.Time) (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.After(e.expires) {
		return nil, false
	}
	return e.preview, true
}

// put stores a preview; when the cache is full it drops the expired entries and, if that is not
// enough, arbitrary ones.
func (c *previewCache) put(key string, p map[string]any, now time.Time, lifetime time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]previewEntry{}
	}
	if len(c.entries) >= previewCacheEntries {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < previewCacheEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = previewEntry{preview: p, expires: now.Add(lifetime)}
}

func (s *Service) handlePreviewURL(r *http.Request, _ string) (mxhttp.Response, error) {
	if !s.cfg.URLPreviews {
		return mxhttp.Response{}, mxhttp.Forbidden("URL previews are disabled on this server")
	}
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("the url parameter is required")
	}
	if ts := r.URL.Query().Get("ts"); ts != "" && !isDigits(ts) {
		return mxhttp.Response{}, mxhttp.InvalidParam("ts must be a timestamp in milliseconds")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("url must be an http or https URL without credentials")
	}
	if s.previewDenied(u.Hostname()) {
		return mxhttp.Response{}, mxhttp.Forbidden("previews of this host are not allowed on this server")
	}
	u.Fragment, u.RawFragment = "", "" // never sent to the site
	key := u.String()
	if p, ok := s.previews.get(key, s.now()); ok {
		return mxhttp.OK(p), nil
	}
	unlock := s.fetching.lock("preview " + key)
	defer unlock()
	if p, ok := s.previews.get(key, s.now()); ok {
		return mxhttp.OK(p), nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), previewTimeout)
	defer cancel()
	select {
	case s.previewSlots <- struct{}{}:
		defer func() { <-s.previewSlots }()
	case <-ctx.Done():
		return mxhttp.Response{}, mxhttp.LimitExceeded(time.Second)
	}
	p, err := s.preview(ctx, u)
	if err != nil {
		return mxhttp.Response{}, err
	}
	s.previews.put(key, p, s.now(), s.cfg.URLPreviewCacheLifetime)
	return mxhttp.OK(p), nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// previewDenied reports whether host matches one of the operator's denied host patterns
// (path.Match globs such as "*.internal").
func (s *Service) previewDenied(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pattern := range s.cfg.URLPreviewDeniedHosts {
		if ok, _ := path.Match(strings.ToLower(pattern), host); ok {
			return true
		}
	}
	return false
}

// preview fetches u and returns its OpenGraph data: from the page's meta tags for HTML (with
// the title and description as fallbacks), or the image itself when u is an image.
func (s *Service) preview(ctx context.Context, u *url.URL) (map[string]any, error) {
	if s.cfg.Remote == nil {
		return nil, previewFailed(errors.New("no remote fetcher"))
	}
	resp, err := s.cfg.Remote.GetURL(ctx, u.String())
	if err != nil {
		return nil, previewFailed(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, previewFailed(fmt.Errorf("the site answered %s", resp.Status))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml":
		page, err := io.ReadAll(io.LimitReader(resp.Body, previewMaxPage))
		if err != nil {
			return nil, previewFailed(err)
		}
		og := parseOpenGraph(page, resp.Header.Get("Content-Type"))
		final := resp.Request.URL // after redirects, for relative image URLs
		if img, ok := og["og:image"].(string); ok {
			delete(og, "og:image")
			if imgURL, err := final.Parse(img); err == nil && (imgURL.Scheme == "https" || imgURL.Scheme == "http") &&
				!s.previewDenied(imgURL.Hostname()) {
				s.previewImage(ctx, imgURL, og)
			}
		}
		if og["og:image"] == nil {
			// The page's own image dimensions describe an image the preview does not have.
			for k := range og {
				if strings.HasPrefix(k, "og:image:") {
					delete(og, k)
				}
			}
		}
		return og, nil
	case canThumbnail(mt):
		og := map[string]any{}
		if err := s.storePreviewImage(ctx, resp, og); err != nil {
			return nil, err
		}
		return og, nil
	default:
		// Nothing to show for other content; an empty preview is a valid answer.
		return map[string]any{}, nil
	}
}

// previewImage fetches the page's image into og; a page whose image cannot be had is still
// previewed, without it.
func (s *Service) previewImage(ctx context.Context, u *url.URL, og map[string]any) {
	resp, err := s.cfg.Remote.GetURL(ctx, u.String())
	if err != nil {
		mxhttp.Logger(ctx).WithError(withoutURL(err)).Debug("preview image not fetched")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	if err := s.storePreviewImage(ctx, resp, og); err != nil {
		mxhttp.Logger(ctx).WithError(withoutURL(err)).Debug("preview image not stored")
	}
}

// storePreviewImage stores the image in resp as media without an uploader and describes it in
// og. Only images the thumbnailer accepts are stored, so clients can thumbnail them.
func (s *Service) storePreviewImage(ctx context.Context, resp *http.Response, og map[string]any) error {
	ct := normaliseContentType(resp.Header.Get("Content-Type"))
	if !canThumbnail(ct) {
		return previewFailed(fmt.Errorf("image type %q", ct))
	}
	f, err := s.files.stage(resp.Body, min(int64(previewMaxImage), s.cfg.MaxUploadSize))
	if errors.Is(err, errTooLarge) {
		return remoteTooLarge()
	}
	if err != nil {
		return previewFailed(err)
	}
	info, err := s.probeStaged(f)
	if err != nil {
		f.discard()
		return previewFailed(err)
	}
	now := s.now().UnixMilli()
	m := storage.Media{
		Origin: s.cfg.ServerName, MediaID: newMediaID(), ContentHash: f.Hash, ContentType: ct,
		Size: f.Size, CreatedTS: now, UploadedTS: now, LastAccessTS: now,
	}
	if err := s.files.commit(f, func() error {
		return s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertMedia(ctx, m) })
	}); err != nil {
		return err
	}
	og["og:image"] = mxcURI(m.Origin, m.MediaID)
	og["og:image:type"] = ct
	og["og:image:width"] = info.Width
	og["og:image:height"] = info.Height
	og["matrix:image:size"] = f.Size
	return nil
}

// probeStaged reads the staged image's header: its size, within the pixel bound.
func (s *Service) probeStaged(f *stagedFile) (imageInfo, error) {
	data, err := readHead(f.tmp, 64<<10)
	if err != nil {
		return imageInfo{}, err
	}
	return probeImage(bytes.NewReader(data), s.cfg.MaxImagePixels)
}

// previewFailed is the answer to a preview that could not be made. The cause is logged, and
// Go's HTTP client names the URL in its errors: withoutURL keeps what users read out of logs.
func previewFailed(cause error) *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: "could not preview the URL", Cause: withoutURL(cause)}
}

// withoutURL unwraps a *url.Error, whose message quotes the URL, to its cause.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// parseOpenGraph reads the og: meta tags of an HTML page (and twitter: ones as a fallback),
// falling back to <title> and <meta name="description"> for the title and description. The
// page is decoded from the charset its Content-Type or its own meta tags declare.
func parseOpenGraph(page []byte, contentType string) map[string]any {
	og := map[string]any{}
	var title strings.Builder
	var description, twitterImage string
	r, err := charset.NewReader(bytes.NewReader(page), contentType)
	if err != nil {
		r = bytes.NewReader(page)
	}
	z := html.NewTokenizer(r)
	inTitle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if title.Len() > 0 && og["og:title"] == nil {
				og["og:title"] = clip(strings.Join(strings.Fields(title.String()), " "))
			}
			if description != "" && og["og:description"] == nil {
				og["og:description"] = clip(description)
			}
			if twitterImage != "" && og["og:image"] == nil {
				og["og:image"] = twitterImage
			}
			return og
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "title":
				inTitle = true
			case "meta":
				if !hasAttr {
					continue
				}
				attrs := map[string]string{}
				for {
					k, v, more := z.TagAttr()
					attrs[string(k)] = string(v)
					if !more {
						break
					}
				}
				prop := strings.ToLower(attrs["property"])
				if prop == "" {
					prop = strings.ToLower(attrs["name"])
				}
				content := strings.TrimSpace(attrs["content"])
				switch {
				case content == "":
				case strings.HasPrefix(prop, "og:"):
					if og[prop] == nil {
						og[prop] = clip(content)
					}
				case prop == "description":
					description = content
				case prop == "twitter:image" || prop == "twitter:image:src":
					twitterImage = content
				case prop == "twitter:title" && og["og:title"] == nil:
					og["og:title"] = clip(content)
				}
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "title" {
				inTitle = false
			}
		case html.TextToken:
			if inTitle && title.Len() < maxPreviewValue {
				title.Write(z.Text())
			}
		}
	}
}

// clip bounds a preview value, cutting at a rune boundary.
func clip(s string) string {
	if len(s) <= maxPreviewValue {
		return s
	}
	s = s[:maxPreviewValue]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// readHead reads up to n bytes from the start of a file.
func readHead(name string, n int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return buf[:k], nil
}
