package export

import (
	"archive/zip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFiles(files map[string]string) func(Sink) error {
	return func(s Sink) error {
		for _, name := range []string{"a.json", "dir/b.json", "manifest.json"} {
			w, err := s.Create(name)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(w, files[name]); err != nil {
				return err
			}
		}
		return nil
	}
}

var sample = map[string]string{"a.json": `{"a":1}`, "dir/b.json": `[]`, "manifest.json": `{}`}

// TestZipArchive: the zip is complete, 0600, never replaces a file without force, and a failed
// export leaves nothing behind.
func TestZipArchive(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.zip")
	now := time.Unix(1_700_000_000, 0)
	if err := WriteArchive(target, false, now, writeFiles(sample)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	zr, err := zip.OpenReader(target)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		got[f.Name] = string(b)
		if f.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", f.Name, f.Mode())
		}
	}
	zr.Close()
	for k, v := range sample {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if err := WriteArchive(target, false, now, writeFiles(sample)); !errors.Is(err, ErrExists) {
		t.Errorf("second write without force: %v", err)
	}
	if err := WriteArchive(target, true, now, writeFiles(map[string]string{"a.json": "new"})); err != nil {
		t.Errorf("force: %v", err)
	}
	failed := filepath.Join(dir, "failed.zip")
	boom := errors.New("boom")
	if err := WriteArchive(failed, false, now, func(s Sink) error { s.Create("a.json"); return boom }); !errors.Is(err, boom) {
		t.Errorf("failing export: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "out.zip" {
		t.Errorf("left behind: %v", entries)
	}
	if err := WriteArchive(filepath.Join(dir, "bad.zip"), false, now, func(s Sink) error { _, err := s.Create("../escape"); return err }); err == nil {
		t.Error("a name outside the archive was accepted")
	}
}

// TestDirArchive: a directory archive has 0600 files in 0700 directories; --force replaces a
// previous export but never a directory that is not one.
func TestDirArchive(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out") + "/"
	now := time.Now()
	if err := WriteArchive(target, false, now, writeFiles(sample)); err != nil {
		t.Fatal(err)
	}
	for name, want := range sample {
		p := filepath.Join(dir, "out", filepath.FromSlash(name))
		b, err := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != want || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %q %v %v", name, b, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "out", "dir")); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode())
	}
	if err := WriteArchive(target, false, now, writeFiles(sample)); !errors.Is(err, ErrExists) {
		t.Errorf("second write without force: %v", err)
	}
	if err := WriteArchive(target, true, now, writeFiles(map[string]string{"a.json": "new"})); err != nil {
		t.Fatalf("force: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out", "a.json")); string(b) != "new" {
		t.Errorf("force did not replace: %q", b)
	}
	other := filepath.Join(dir, "precious")
	os.MkdirAll(other, 0o700)
	os.WriteFile(filepath.Join(other, "keep"), []byte("x"), 0o600)
	if err := WriteArchive(other+"/", true, now, writeFiles(sample)); err == nil {
		t.Error("--force replaced a directory that is not an export")
	}
	if _, err := os.Stat(filepath.Join(other, "keep")); err != nil {
		t.Error("the directory was damaged")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left behind: %v", entries)
	}
}
