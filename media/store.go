package media

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// errTooLarge: content exceeded the size it was allowed.
var errTooLarge = errors.New("media: content too large")

// fileStore keeps content on disk addressed by its SHA-256, so that content uploaded many times is
// stored once. Files are written to a temporary name and renamed into place, so a reader never
// sees half a file. A content hash is only ever a lower-case hex string, which keeps paths
// inside the directory whatever a client sends.
type fileStore struct {
	dir string
	// inUse reports whether any database row still uses a content hash.
	inUse func(hash string) (bool, error)
	// locks serialise, per hash, placing a file and removing an unused one, so that a removal
	// cannot delete the file an upload of the same content has just relied on.
	locks keyedMutex
}

func newFileStore(dir string, inUse func(hash string) (bool, error)) (*fileStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("media: creating %s: %w", dir, err)
	}
	// Temporary files of a process that died mid-upload are of no use to anyone.
	if entries, err := os.ReadDir(filepath.Join(dir, "tmp")); err == nil {
		for _, e := range entries {
			os.Remove(filepath.Join(dir, "tmp", e.Name()))
		}
	}
	return &fileStore{dir: dir, inUse: inUse}, nil
}

func (s *fileStore) path(hash string) string {
	return filepath.Join(s.dir, hash[:2], hash[2:4], hash)
}

// stagedFile is content written to a temporary file and hashed, not yet in the store.
type stagedFile struct {
	tmp  string
	Hash string
	Size int64
}

// stage copies at most limit bytes of r into a temporary file; more is errTooLarge.
func (s *fileStore) stage(r io.Reader, limit int64) (*stagedFile, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	return &stagedFile{tmp: f.Name(), Hash: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// discard removes a staged file that will not be committed.
func (f *stagedFile) discard() { os.Remove(f.tmp) }

// commit moves a staged file into place (dropping it when the content is already stored) and
// then runs record, which writes the database row, while no removal of the hash can interleave.
// When record fails, a file that no row uses is removed again.
func (s *fileStore) commit(f *stagedFile, record func() error) error {
	unlock := s.locks.lock(f.Hash)
	defer unlock()
	dst := s.path(f.Hash)
	if _, err := os.Stat(dst); err == nil {
		os.Remove(f.tmp)
	} else {
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			f.discard()
			return err
		}
		if err := os.Rename(f.tmp, dst); err != nil {
			f.discard()
			return err
		}
	}
	if err := record(); err != nil {
		if used, uerr := s.inUse(f.Hash); uerr == nil && !used {
			os.Remove(dst)
		}
		return err
	}
	return nil
}

// open opens stored content.
func (s *fileStore) open(hash string) (*os.File, error) {
	if !validHash(hash) {
		return nil, fmt.Errorf("media: bad content hash %q", hash)
	}
	return os.Open(s.path(hash))
}

// removeIfUnused removes the file of hash when no row uses it any more (asked under the hash's
// lock).
func (s *fileStore) removeIfUnused(hash string) error {
	if !validHash(hash) {
		return nil
	}
	unlock := s.locks.lock(hash)
	defer unlock()
	used, err := s.inUse(hash)
	if err != nil || used {
		return err
	}
	if err := os.Remove(s.path(hash)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// keyedMutex is a mutex per key, created on demand and dropped when unused.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
