package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"mime"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers WebP with image.Decode
)

// ThumbnailSize is one size the server generates: Method "crop" gives exactly Width x Height (of
// the image's centre), "scale" fits the image within Width x Height keeping its aspect ratio.
type ThumbnailSize struct {
	Width, Height int
	Method        string
}

// DefaultThumbnailSizes are the sizes the spec recommends (and Synapse generates).
var DefaultThumbnailSizes = []ThumbnailSize{
	{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"},
}

// DefaultMaxImagePixels bounds what the thumbnailer decodes: 32 megapixels is about 128 MiB of
// RGBA, beyond any avatar or photo and well short of what a decompression bomb declares.
const DefaultMaxImagePixels = 32_000_000

var (
	// ErrNotThumbnailable: the content is not an image this server can thumbnail.
	ErrNotThumbnailable = errors.New("media: cannot thumbnail this content")
	// ErrImageTooLarge: the image declares more pixels than the server decodes.
	ErrImageTooLarge = errors.New("media: image too large to thumbnail")
)

// thumbnailable are the content types the thumbnailer accepts; anything else is refused before
// a decoder sees it.
var thumbnailable = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// canThumbnail reports whether contentType is one the thumbnailer accepts.
func canThumbnail(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && thumbnailable[mt]
}

// imageInfo is what DecodeConfig tells about an image without decoding it.
type imageInfo struct {
	Width, Height int
	Format        string
}

// probeImage reads an image's header and refuses one whose declared size exceeds maxPixels,
// before anything is decoded.
func probeImage(r io.Reader, maxPixels int64) (imageInfo, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return imageInfo{}, fmt.Errorf("%w: %v", ErrNotThumbnailable, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return imageInfo{}, fmt.Errorf("%w: empty image", ErrNotThumbnailable)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return imageInfo{}, fmt.Errorf("%w: %dx%d", ErrImageTooLarge, cfg.Width, cfg.Height)
	}
	switch format {
	case "jpeg", "png", "gif", "webp":
	default:
		return imageInfo{}, fmt.Errorf("%w: format %s", ErrNotThumbnailable, format)
	}
	return imageInfo{Width: cfg.Width, Height: cfg.Height, Format: format}, nil
}

// makeThumbnail decodes the image in src (checked by probeImage first) and returns a thumbnail of
// the given size and method, as JPEG for opaque images and PNG for images with transparency.
// It never upscales. Decoding stops being waited for when ctx ends.
func makeThumbnail(ctx context.Context, src io.ReadSeeker, size ThumbnailSize, maxPixels int64) ([]byte, string, error) {
	info, err := probeImage(src, maxPixels)
	if err != nil {
		return nil, "", err
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return nil, "", err
	}
	type decoded struct {
		img image.Image
		err error
	}
	done := make(chan decoded, 1)
	go func() {
		// A malformed image can make a decoder panic; that must not take the server down.
		defer func() {
			if p := recover(); p != nil {
				done <- decoded{err: fmt.Errorf("%w: decoder panic: %v", ErrNotThumbnailable, p)}
			}
		}()
		var img image.Image
		var err error
		if info.Format == "gif" {
			img, err = gif.Decode(src)
		} else {
			img, _, err = image.Decode(src)
		}
		done <- decoded{img, err}
	}()
	var d decoded
	select {
	case d = <-done:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	if d.err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNotThumbnailable, d.err)
	}
	out := scaleImage(d.img, size)
	var buf bytes.Buffer
	if hasAlpha(d.img) {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, out)
		return buf.Bytes(), "image/png", err
	}
	err = jpeg.Encode(&buf, out, &jpeg.Options{Quality: 85})
	return buf.Bytes(), "image/jpeg", err
}

// scaleImage crops or scales img to size, never upscaling.
func scaleImage(img image.Image, size ThumbnailSize) image.Image {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	srcRect := b
	var tw, th int
	if size.Method == "crop" {
		// The centre of the source with the aspect ratio of the target, scaled to the target.
		cw, ch := sw, sh
		if int64(sw)*int64(size.Height) > int64(sh)*int64(size.Width) {
			cw = max(1, int(int64(sh)*int64(size.Width)/int64(size.Height)))
		} else {
			ch = max(1, int(int64(sw)*int64(size.Height)/int64(size.Width)))
		}
		x0, y0 := b.Min.X+(sw-cw)/2, b.Min.Y+(sh-ch)/2
		srcRect = image.Rect(x0, y0, x0+cw, y0+ch)
		tw, th = min(size.Width, cw), min(size.Height, ch)
	} else {
		tw, th = fitWithin(sw, sh, size.Width, size.Height)
	}
	dst := image.NewNRGBA(image.Rect(0, 0, tw, th))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, srcRect, draw.Src, nil)
	return dst
}

// fitWithin returns the largest size of aspect w:h within maxW x maxH, never larger than w x h.
func fitWithin(w, h, maxW, maxH int) (int, int) {
	if w <= maxW && h <= maxH {
		return w, h
	}
	if int64(w)*int64(maxH) > int64(h)*int64(maxW) {
		return maxW, max(1, int(int64(h)*int64(maxW)/int64(w)))
	}
	return max(1, int(int64(w)*int64(maxH)/int64(h))), maxH
}

// hasAlpha reports whether an image may have transparent pixels.
func hasAlpha(img image.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return !o.Opaque()
	}
	return true
}

// chooseThumbnailSize picks the configured size that serves a request for w x h with method:
// the smallest of that method at least as large as asked, else the largest of that method, else
// the same among the other method's sizes. ok is false when there are no sizes.
func chooseThumbnailSize(sizes []ThumbnailSize, w, h int, method string) (ThumbnailSize, bool) {
	pick := func(method string) (ThumbnailSize, bool) {
		var best, largest ThumbnailSize
		var haveBest, haveLargest bool
		for _, s := range sizes {
			if s.Method != method {
				continue
			}
			if s.Width >= w && s.Height >= h && (!haveBest || s.Width*s.Height < best.Width*best.Height) {
				best, haveBest = s, true
			}
			if !haveLargest || s.Width*s.Height > largest.Width*largest.Height {
				largest, haveLargest = s, true
			}
		}
		if haveBest {
			return best, true
		}
		return largest, haveLargest
	}
	if s, ok := pick(method); ok {
		return s, true
	}
	other := "crop"
	if method == "crop" {
		other = "scale"
	}
	return pick(other)
}
