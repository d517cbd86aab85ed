package media

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// testImage is a w x h gradient, with transparency when alpha is set.
func testImage(w, h int, alpha bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			a := uint8(255)
			if alpha && x < w/2 {
				a = 100
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 128, a})
		}
	}
	return img
}

func encode(t *testing.T, format string, img image.Image) []byte {
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

// pngBomb is a PNG whose header declares width x height pixels; nothing else follows, since a
// decoder that honours the pixel bound never reads further.
func pngBomb(width, height uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte("\x89PNG\r\n\x1a\n"))
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
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// webpLossless is a 1x1 lossless WebP (x/image has a WebP decoder but no encoder).
const webpLossless = "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA=="

func TestMakeThumbnail(t *testing.T) {
	webp, _ := base64.StdEncoding.DecodeString(webpLossless)
	for _, c := range []struct {
		name     string
		data     []byte
		size     ThumbnailSize
		wantW    int
		wantH    int
		wantType string
	}{
		{"jpeg crop", encode(t, "jpeg", testImage(400, 300, false)), ThumbnailSize{96, 96, "crop"}, 96, 96, "image/jpeg"},
		{"jpeg scale", encode(t, "jpeg", testImage(400, 300, false)), ThumbnailSize{320, 240, "scale"}, 320, 240, "image/jpeg"},
		{"jpeg scale tall", encode(t, "jpeg", testImage(300, 600, false)), ThumbnailSize{320, 240, "scale"}, 120, 240, "image/jpeg"},
		{"png opaque", encode(t, "png", testImage(640, 200, false)), ThumbnailSize{32, 32, "crop"}, 32, 32, "image/jpeg"},
		{"png alpha", encode(t, "png", testImage(640, 200, true)), ThumbnailSize{320, 240, "scale"}, 320, 100, "image/png"},
		{"gif", encode(t, "gif", testImage(200, 200, false)), ThumbnailSize{96, 96, "crop"}, 96, 96, "image/jpeg"},
		{"no upscale", encode(t, "png", testImage(50, 40, false)), ThumbnailSize{800, 600, "scale"}, 50, 40, "image/jpeg"},
		{"crop no upscale", encode(t, "png", testImage(50, 20, false)), ThumbnailSize{96, 96, "crop"}, 20, 20, "image/jpeg"},
		{"webp", webp, ThumbnailSize{32, 32, "crop"}, 1, 1, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, ct, err := makeThumbnail(context.Background(), bytes.NewReader(c.data), c.size, DefaultMaxImagePixels)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantType != "" && ct != c.wantType {
				t.Errorf("content type %s, want %s", ct, c.wantType)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if "image/"+format != ct {
				t.Errorf("encoded as %s but labelled %s", format, ct)
			}
			if cfg.Width != c.wantW || cfg.Height != c.wantH {
				t.Errorf("size %dx%d, want %dx%d", cfg.Width, cfg.Height, c.wantW, c.wantH)
			}
		})
	}
}

func TestThumbnailRefusesHostileInput(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"decompression bomb", pngBomb(100_000, 100_000), ErrImageTooLarge},
		{"just over the bound", pngBomb(32_001, 1000), ErrImageTooLarge},
		{"html", []byte("<html><script>alert(1)</script></html>"), ErrNotThumbnailable},
		{"empty", nil, ErrNotThumbnailable},
		{"truncated png", encode(t, "png", testImage(100, 100, false))[:60], ErrNotThumbnailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := makeThumbnail(context.Background(), bytes.NewReader(c.data), ThumbnailSize{32, 32, "crop"}, DefaultMaxImagePixels)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestChooseThumbnailSize(t *testing.T) {
	for _, c := range []struct {
		w, h   int
		method string
		want   ThumbnailSize
	}{
		{32, 32, "crop", ThumbnailSize{32, 32, "crop"}},
		{33, 20, "crop", ThumbnailSize{96, 96, "crop"}},
		{500, 500, "crop", ThumbnailSize{96, 96, "crop"}}, // none large enough: the largest
		{100, 100, "scale", ThumbnailSize{320, 240, "scale"}},
		{600, 300, "scale", ThumbnailSize{640, 480, "scale"}},
		{2000, 2000, "scale", ThumbnailSize{800, 600, "scale"}},
	} {
		if got, ok := chooseThumbnailSize(DefaultThumbnailSizes, c.w, c.h, c.method); !ok || got != c.want {
			t.Errorf("%dx%d %s: got %v, want %v", c.w, c.h, c.method, got, c.want)
		}
	}
	onlyScale := []ThumbnailSize{{320, 240, "scale"}}
	if got, _ := chooseThumbnailSize(onlyScale, 32, 32, "crop"); got != onlyScale[0] {
		t.Errorf("falls back to the other method: got %v", got)
	}
	if _, ok := chooseThumbnailSize(nil, 32, 32, "crop"); ok {
		t.Error("no sizes: ok")
	}
}
