package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"myelin/keys/e2e"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestBetterBackupKey(t *testing.T) {
	k := func(verified bool, fmi, fc int64) storage.BackupKey {
		return storage.BackupKey{IsVerified: verified, FirstMessageIndex: fmi, ForwardedCount: fc}
	}
	for _, tt := range []struct {
		name                string
		candidate, existing storage.BackupKey
		want                bool
	}{
		{"verified beats unverified", k(true, 10, 5), k(false, 0, 0), true},
		{"unverified loses to verified", k(false, 0, 0), k(true, 10, 5), false},
		{"lower first_message_index wins", k(false, 1, 9), k(false, 2, 0), true},
		{"higher first_message_index loses", k(true, 3, 0), k(true, 2, 9), false},
		{"then lower forwarded_count wins", k(false, 2, 0), k(false, 2, 1), true},
		{"higher forwarded_count loses", k(false, 2, 2), k(false, 2, 1), false},
		{"an equal key is not stored", k(true, 2, 1), k(true, 2, 1), false},
	} {
		if got := e2e.BetterBackupKey(tt.candidate, tt.existing); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func backupKey(verified bool, fmi, fc int64, data string) e2e.KeyBackupData {
	return e2e.KeyBackupData{FirstMessageIndex: &fmi, ForwardedCount: &fc, IsVerified: &verified,
		SessionData: json.RawMessage(`{"ciphertext":"` + data + `"}`)}
}

func TestBackup(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newStore(t, db, e2e.Options{}, map[string][]string{"alice": {"A1"}})
		user := uid("alice")
		const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
		if _, err := s.Backup(ctx, user, ""); errKind(err) != "M_NOT_FOUND" {
			t.Fatalf("latest with no backup: %v", err)
		}
		v1, err := s.CreateBackup(ctx, user, alg, json.RawMessage(`{"public_key":"abc"}`))
		if err != nil {
			t.Fatal(err)
		}
		put := func(version string, rooms map[string]map[string]e2e.KeyBackupData) (e2e.BackupUpdate, error) {
			return s.PutBackupKeys(ctx, user, version, rooms)
		}
		u, err := put(v1, map[string]map[string]e2e.KeyBackupData{"!r:x": {"s1": backupKey(false, 5, 1, "old"), "s2": backupKey(false, 0, 0, "b")}})
		if err != nil || u.Count != 2 {
			t.Fatalf("first put = %+v, %v", u, err)
		}
		// A worse key leaves the etag alone; a better one replaces and moves it.
		worse, _ := put(v1, map[string]map[string]e2e.KeyBackupData{"!r:x": {"s1": backupKey(false, 6, 0, "worse")}})
		if worse.Etag != u.Etag || worse.Count != 2 {
			t.Errorf("worse key changed the backup: %+v then %+v", u, worse)
		}
		better, _ := put(v1, map[string]map[string]e2e.KeyBackupData{"!r:x": {"s1": backupKey(true, 9, 3, "new")}})
		if better.Etag == u.Etag {
			t.Error("better key did not change the etag")
		}
		got, err := s.BackupKeys(ctx, user, v1, "!r:x", "s1")
		if err != nil || len(got) != 1 || string(got[0].SessionData) != `{"ciphertext":"new"}` || !got[0].IsVerified {
			t.Errorf("stored s1 = %+v, %v", got, err)
		}
		info, err := s.Backup(ctx, user, "")
		if err != nil || info.Version != v1 || info.Count != 2 || info.Etag != better.Etag || string(info.AuthData) != `{"public_key":"abc"}` {
			t.Errorf("latest = %+v, %v", info, err)
		}
		if _, err := put(v1, map[string]map[string]e2e.KeyBackupData{"!r:x": {"s3": {SessionData: json.RawMessage(`{}`)}}}); errKind(err) != "M_MISSING_PARAM" {
			t.Errorf("key without metadata: %v", err)
		}

		if err := s.UpdateBackup(ctx, user, v1, "other.algorithm", "", json.RawMessage(`{}`)); errKind(err) != "M_INVALID_PARAM" {
			t.Errorf("update with another algorithm: %v", err)
		}
		if err := s.UpdateBackup(ctx, user, v1, alg, "7", json.RawMessage(`{}`)); errKind(err) != "M_INVALID_PARAM" {
			t.Errorf("update with another body version: %v", err)
		}
		if err := s.UpdateBackup(ctx, user, v1, alg, v1, json.RawMessage(`{"public_key":"def"}`)); err != nil {
			t.Errorf("update: %v", err)
		}

		v2, _ := s.CreateBackup(ctx, user, alg, json.RawMessage(`{"public_key":"xyz"}`))
		_, err = put(v1, map[string]map[string]e2e.KeyBackupData{"!r:x": {"s9": backupKey(false, 0, 0, "x")}})
		var wrong *e2e.WrongBackupVersionError
		if !errors.As(err, &wrong) || wrong.CurrentVersion != v2 {
			t.Errorf("put to an old version: %v, want WrongBackupVersionError{%s}", err, v2)
		}
		if keys, err := s.BackupKeys(ctx, user, v1, "", ""); err != nil || len(keys) != 2 {
			t.Errorf("old version still readable: %d keys, %v", len(keys), err)
		}
		d, err := s.DeleteBackupKeys(ctx, user, v1, "!r:x", "s2")
		if err != nil || d.Count != 1 {
			t.Errorf("delete one key = %+v, %v", d, err)
		}

		if err := s.DeleteBackup(ctx, user, v2); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteBackup(ctx, user, v2); err != nil {
			t.Errorf("deleting a deleted backup again: %v, want success", err)
		}
		if err := s.DeleteBackup(ctx, user, "99"); errKind(err) != "M_NOT_FOUND" {
			t.Errorf("deleting a backup that never existed: %v", err)
		}
		if _, err := s.Backup(ctx, user, v2); errKind(err) != "M_NOT_FOUND" {
			t.Errorf("get deleted backup: %v", err)
		}
		if info, _ := s.Backup(ctx, user, ""); info.Version != v1 {
			t.Errorf("latest after deleting %s = %s, want %s", v2, info.Version, v1)
		}
		if v3, _ := s.CreateBackup(ctx, user, alg, json.RawMessage(`{}`)); v3 == v2 || v3 == v1 {
			t.Errorf("version %s reused", v3)
		}
		if _, err := s.Backup(ctx, user, "not-a-number"); errKind(err) != "M_NOT_FOUND" {
			t.Errorf("get malformed version: %v", err)
		}
	})
}
