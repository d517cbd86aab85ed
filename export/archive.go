package export

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Writing an archive to disk. An export holds a person's messages and keys, so it is written
// like a secret: mode 0600 (directories 0700), into a temporary name beside the target that is
// renamed into place only once complete, so that a crash or an error never leaves half an
// archive under the target name. An existing target is refused unless force is set.

// ErrExists: the target exists and force was not set.
var ErrExists = errors.New("export: the output exists (use --force to replace it)")

// IsDirTarget reports whether path names a directory archive: it ends with a path separator.
func IsDirTarget(p string) bool {
	return strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator))
}

// WriteArchive creates the archive at target and fills it with write: a zip file, or a directory
// of plain files when target ends with a separator (IsDirTarget).
func WriteArchive(target string, force bool, now time.Time, write func(Sink) error) error {
	if IsDirTarget(target) {
		return writeDirArchive(filepath.Clean(target), force, write)
	}
	return writeZipArchive(target, force, now, write)
}

func writeZipArchive(target string, force bool, now time.Time, write func(Sink) error) (err error) {
	if !force {
		if _, err := os.Lstat(target); err == nil {
			return ErrExists
		}
	}
	// CreateTemp makes the file 0600 and unique beside the target, so the rename stays on one
	// file system.
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export: creating the archive: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	zw := zip.NewWriter(f)
	if err := write(&zipSink{zw: zw, now: now}); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("export: finishing the archive: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("export: syncing the archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export: closing the archive: %w", err)
	}
	if force {
		if err := os.Rename(tmp, target); err != nil {
			return fmt.Errorf("export: moving the archive into place: %w", err)
		}
		return nil
	}
	// A hard link fails if the target appeared meanwhile, where a rename would replace it.
	if err := os.Link(tmp, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrExists
		}
		return fmt.Errorf("export: moving the archive into place: %w", err)
	}
	return os.Remove(tmp)
}

// zipSink writes each file as a deflated zip entry, mode 0600.
type zipSink struct {
	zw  *zip.Writer
	now time.Time
}

func (s *zipSink) Create(name string) (io.Writer, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: s.now}
	h.SetMode(0o600)
	return s.zw.CreateHeader(h)
}

func writeDirArchive(target string, force bool, write func(Sink) error) (err error) {
	if _, err := os.Lstat(target); err == nil && !force {
		return ErrExists
	}
	tmp, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export: creating the archive directory: %w", err)
	}
	sink := &dirSink{root: tmp}
	defer func() {
		sink.close()
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := write(sink); err != nil {
		return err
	}
	if err := sink.close(); err != nil {
		return fmt.Errorf("export: writing the archive: %w", err)
	}
	if _, err := os.Lstat(target); err == nil {
		if !force {
			return ErrExists
		}
		// --force replaces a previous export, never an arbitrary directory: the operator may
		// have mistyped the path, and removing it would be unrecoverable.
		if _, err := os.Stat(filepath.Join(target, "manifest.json")); err != nil {
			return fmt.Errorf("export: %s exists and is not a previous export (no manifest.json); refusing to replace it", target)
		}
		old := tmp + ".old"
		if err := os.Rename(target, old); err != nil {
			return fmt.Errorf("export: moving the previous export aside: %w", err)
		}
		if err := os.Rename(tmp, target); err != nil {
			os.Rename(old, target)
			return fmt.Errorf("export: moving the archive into place: %w", err)
		}
		return os.RemoveAll(old)
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("export: moving the archive into place: %w", err)
	}
	return nil
}

// dirSink writes each file as a plain file, 0600, in directories 0700.
type dirSink struct {
	root string
	cur  *os.File
}

func (s *dirSink) Create(name string) (io.Writer, error) {
	if err := s.close(); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	p := filepath.Join(s.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	s.cur = f
	return f, nil
}

// close finishes the current file, synced to disk.
func (s *dirSink) close() error {
	if s.cur == nil {
		return nil
	}
	f := s.cur
	s.cur = nil
	err := f.Sync()
	return errors.Join(err, f.Close())
}

// checkName refuses names that would leave the archive's root.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." {
		return fmt.Errorf("export: bad file name %q", name)
	}
	return nil
}
