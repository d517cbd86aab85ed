package keys

import (
	"path/filepath"
	"testing"
	"time"
)

func TestRotateSigningKey(t *testing.T) {
	dir := t.TempDir()
	keyPath, retiredPath := filepath.Join(dir, "signing.key"), filepath.Join(dir, "old_verify_keys.json")
	first, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSigningKey(keyPath, first); err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_700_000_000_000)
	old, fresh, err := RotateSigningKey(keyPath, retiredPath, now)
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != first.ID || fresh.ID == first.ID {
		t.Fatalf("rotation returned old %s new %s, started with %s", old.ID, fresh.ID, first.ID)
	}
	loaded, err := LoadSigningKey(keyPath)
	if err != nil || loaded.ID != fresh.ID {
		t.Fatalf("key file holds %v (%v), want the new key %s", loaded.ID, err, fresh.ID)
	}
	retired, err := LoadRetiredKeys(retiredPath)
	if err != nil {
		t.Fatal(err)
	}
	if r := retired[first.ID]; r.Key != EncodeBase64(first.Public()) || r.ExpiredTS != now.UnixMilli() {
		t.Fatalf("retired keys: %+v", retired)
	}

	// A second rotation keeps the first retired key.
	if _, _, err := RotateSigningKey(keyPath, retiredPath, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	retired, _ = LoadRetiredKeys(retiredPath)
	if len(retired) != 2 {
		t.Fatalf("want two retired keys, got %+v", retired)
	}
}

func TestLoadRetiredKeysMissingFile(t *testing.T) {
	k, err := LoadRetiredKeys(filepath.Join(t.TempDir(), "none.json"))
	if err != nil || len(k) != 0 {
		t.Fatalf("got %v, %v", k, err)
	}
}
