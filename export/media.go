package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"

	"myelin/storage"
)

// mediaJSON is one entry of media.json: what the media repository knows of an upload, and where
// in the archive its content is.
type mediaJSON struct {
	URI         string `json:"content_uri"`
	ContentType string `json:"content_type,omitempty"`
	UploadName  string `json:"upload_name,omitempty"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
	CreatedTS   int64  `json:"created_ts"`
	UploadedTS  int64  `json:"uploaded_ts,omitempty"`
	// Pending: created with /create and never uploaded.
	Pending bool `json:"pending,omitempty"`
	// File is the content's path in the archive; empty when there is no content (pending, or
	// the file is missing from the media store).
	File    string `json:"file,omitempty"`
	Missing bool   `json:"missing,omitempty"`
}

func (e *exporter) writeMedia(ctx context.Context) error {
	keys, err := storage.ListUserMedia(ctx, e.opts.DB, e.userID)
	if err != nil {
		return err
	}
	out := make([]mediaJSON, 0, len(keys))
	for _, k := range keys {
		m, err := storage.GetMedia(ctx, e.opts.DB, k.Origin, k.MediaID)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted in the meantime
		}
		if err != nil {
			return fmt.Errorf("export: reading media %s: %w", k.MediaID, err)
		}
		j := mediaJSON{URI: "mxc://" + m.Origin + "/" + m.MediaID, ContentType: m.ContentType, UploadName: m.UploadName,
			Size: m.Size, SHA256: m.ContentHash, CreatedTS: m.CreatedTS, UploadedTS: m.UploadedTS, Pending: m.Pending()}
		if !m.Pending() && e.opts.OpenMedia != nil && safeName(m.MediaID) {
			name := "media/" + m.MediaID
			switch err := e.copyMedia(name, m); {
			case err == nil:
				j.File = name
			case errors.Is(err, fs.ErrNotExist):
				j.Missing = true
			default:
				return err
			}
		}
		out = append(out, j)
	}
	return e.writeJSON("media.json", "the media the user uploaded, and the file of each under media/", out)
}

// copyMedia copies the stored content of m into the archive as name. fs.ErrNotExist (and no
// file written) when the media store has no such content.
func (e *exporter) copyMedia(name string, m storage.Media) error {
	f, err := e.opts.OpenMedia(m.ContentHash)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("export: opening media %s: %w", m.MediaID, err)
	}
	defer f.Close()
	return e.file(name, "", func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}

// safeName reports whether a media id is safe as a file name in any archive: media ids of this
// server are [A-Za-z0-9_-], but a row is not trusted to be.
func safeName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
