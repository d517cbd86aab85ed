package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// twoFrameGIF is a small animated GIF: two frames of w x h, each with a local colour table.
func twoFrameGIF(t *testing.T, w, h int) []byte {
	t.Helper()
	pal := color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	anim := &gif.GIF{}
	for i := range 2 {
		frame := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for y := range h {
			for x := range w {
				frame.SetColorIndex(x, y, uint8((x+y+i)%len(pal)))
			}
		}
		anim.Image = append(anim.Image, frame)
		anim.Delay = append(anim.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withChunk inserts a PNG chunk right after IHDR, where APNG puts acTL.
func withChunk(t *testing.T, png []byte, typ string, data []byte) []byte {
	t.Helper()
	ihdrEnd := 8 + 8 + 13 + 4
	var c bytes.Buffer
	binary.Write(&c, binary.BigEndian, uint32(len(data)))
	c.WriteString(typ)
	c.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	binary.Write(&c, binary.BigEndian, crc.Sum32())
	return append(append(append([]byte{}, png[:ihdrEnd]...), c.Bytes()...), png[ihdrEnd:]...)
}

// webpVP8X is the start of an extended-format WebP whose VP8X flags byte is flags.
func webpVP8X(flags byte) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00")
	return append(b, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}

func TestIsAnimated(t *testing.T) {
	still := encode(t, "png", testImage(8, 8, false))
	for _, tc := range []struct {
		name, format string
		data         []byte
		want         bool
	}{
		{"gif with two frames", "gif", twoFrameGIF(t, 8, 8), true},
		{"gif with one frame", "gif", encode(t, "gif", testImage(8, 8, false)), false},
		{"png", "png", still, false},
		{"apng", "png", withChunk(t, still, "acTL", []byte{0, 0, 0, 2, 0, 0, 0, 0}), true},
		{"png with another ancillary chunk", "png", withChunk(t, still, "tEXt", []byte("k\x00v")), false},
		{"webp animated", "webp", webpVP8X(0x02), true},
		{"webp extended, still", "webp", webpVP8X(0x10), false},
		{"webp simple", "webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x00"), false},
		{"jpeg", "jpeg", encode(t, "jpeg", testImage(8, 8, false)), false},
	} {
		got, err := isAnimated(bytes.NewReader(tc.data), tc.format)
		if err != nil || got != tc.want {
			t.Errorf("%s: isAnimated = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := isAnimated(bytes.NewReader(twoFrameGIF(t, 8, 8)[:20]), "gif"); err == nil {
		t.Errorf("a truncated gif reads as complete")
	}
}

// TestThumbnailAnimatedParameter: a small animated original is its own thumbnail only when the
// request asks for animation; otherwise the answer is a still image (spec v1.11: "When false,
// the server MUST NOT return an animated thumbnail").
func TestThumbnailAnimatedParameter(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		_, srv := newTestService(t, db, Config{})
		const user = "@anim:here.test"
		moving := twoFrameGIF(t, 16, 16)
		mxc := uploadTo(t, srv, user, moving, "image/gif")
		thumb := srv.URL + "/_matrix/client/v1/media/thumbnail/" + mxc + "?width=32&height=32&method=scale"

		for _, q := range []string{"", "&animated=false", "&animated=true", "&animated=false"} {
			status, h, body := get(t, thumb+q, user)
			if status != 200 {
				t.Fatalf("thumbnail%s: %d %s", q, status, body)
			}
			ct := h.Get("Content-Type")
			if q == "&animated=true" {
				if ct != "image/gif" || !bytes.Equal(body, moving) {
					t.Errorf("animated=true: %s, %d bytes; want the original", ct, len(body))
				}
				continue
			}
			if ct == "image/gif" || bytes.Equal(body, moving) {
				t.Errorf("thumbnail%s: the animated original was served (%s)", q, ct)
			}
			if _, _, err := image.Decode(bytes.NewReader(body)); err != nil {
				t.Errorf("thumbnail%s: %v", q, err)
			}
		}
		if status, _, _ := get(t, thumb+"&animated=yes", user); status != 400 {
			t.Errorf("animated=yes: %d", status)
		}

		// A still GIF small enough is still served as it is.
		still := encode(t, "gif", testImage(16, 16, false))
		mxc = uploadTo(t, srv, user, still, "image/gif")
		status, _, body := get(t, srv.URL+"/_matrix/client/v1/media/thumbnail/"+mxc+"?width=32&height=32", user)
		if status != 200 || !bytes.Equal(body, still) {
			t.Errorf("still gif: %d, %d bytes", status, len(body))
		}
	})
}
