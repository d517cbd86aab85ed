package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
)

// A thumbnail request's animated parameter (spec v1.11) forbids an animated answer when false
// and discourages one when absent, while the thumbnailer serves a small enough original as it
// is. isAnimated tells, from the container alone and without decoding a pixel, whether an
// original of a format that can move (GIF, APNG, WebP) does, so that only a still original is
// served as its own thumbnail; a moving one goes through the thumbnailer, which keeps its
// first frame.
func isAnimated(r io.Reader, format string) (bool, error) {
	br := bufio.NewReader(r)
	switch format {
	case "gif":
		return gifHasSecondFrame(br)
	case "png":
		return pngHasAnimationControl(br)
	case "webp":
		return webpHasAnimationFlag(br)
	}
	return false, nil
}

// gifHasSecondFrame walks the blocks of a GIF (GIF89a, section 17 onwards) and reports
// whether a second image descriptor follows the first.
func gifHasSecondFrame(r *bufio.Reader) (bool, error) {
	var head [13]byte // signature, version, logical screen descriptor
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return false, err
	}
	if flags := head[10]; flags&0x80 != 0 {
		if _, err := r.Discard(3 << (flags&0x07 + 1)); err != nil {
			return false, err
		}
	}
	frames := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return false, err
		}
		switch b {
		case 0x21: // extension: label, then data sub-blocks
			if _, err := r.ReadByte(); err != nil {
				return false, err
			}
		case 0x2C: // image descriptor, then an optional local colour table and the image data
			if frames++; frames > 1 {
				return true, nil
			}
			var desc [9]byte
			if _, err := io.ReadFull(r, desc[:]); err != nil {
				return false, err
			}
			if flags := desc[8]; flags&0x80 != 0 {
				if _, err := r.Discard(3 << (flags&0x07 + 1)); err != nil {
					return false, err
				}
			}
			if _, err := r.ReadByte(); err != nil { // LZW minimum code size
				return false, err
			}
		case 0x3B: // trailer
			return false, nil
		default:
			return false, nil // not a block this walker knows: treat the image as still
		}
		if err := skipSubBlocks(r); err != nil {
			return false, err
		}
	}
}

// skipSubBlocks skips GIF data sub-blocks up to and including the zero-length terminator.
func skipSubBlocks(r *bufio.Reader) error {
	for {
		n, err := r.ReadByte()
		if err != nil || n == 0 {
			return err
		}
		if _, err := r.Discard(int(n)); err != nil {
			return err
		}
	}
}

// pngHasAnimationControl reports whether a PNG carries the acTL chunk of APNG, which must
// come before the first IDAT.
func pngHasAnimationControl(r *bufio.Reader) (bool, error) {
	if _, err := r.Discard(8); err != nil { // signature
		return false, err
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return false, err
		}
		switch string(hdr[4:]) {
		case "acTL":
			return true, nil
		case "IDAT", "IEND":
			return false, nil
		}
		// The chunk's data and its CRC.
		if _, err := r.Discard(int(binary.BigEndian.Uint32(hdr[:4])) + 4); err != nil {
			return false, err
		}
	}
}

// webpHasAnimationFlag reports whether a WebP is the extended format (VP8X) with its animation
// flag set.
func webpHasAnimationFlag(r *bufio.Reader) (bool, error) {
	var hdr [21]byte // RIFF size WEBP, the first chunk's header, its first data byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false, err
	}
	if !bytes.Equal(hdr[12:16], []byte("VP8X")) {
		return false, nil
	}
	return hdr[20]&0x02 != 0, nil
}
