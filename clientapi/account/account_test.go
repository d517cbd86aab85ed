package account

import (
	"context"
	"errors"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestLocalpartOf(t *testing.T) {
	a := New(nil, "example.org")
	tests := []struct {
		in, want string
		err      error
	}{
		{in: "alice", want: "alice"},
		{in: "Alice", want: "alice"},
		{in: "@alice:example.org", want: "alice"},
		{in: "@Alice:example.org", want: "alice"},
		{in: "@alice:other.org", err: ErrForeignUser},
		{in: "@alice", err: ErrForeignUser},
	}
	for _, tt := range tests {
		got, err := a.LocalpartOf(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("LocalpartOf(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestCheckCredentials(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		a := New(db, "example.org")
		if _, err := a.Create(ctx, "alice", "correct horse", false); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Create(ctx, "alice", "correct horse", false); !errors.Is(err, ErrUserInUse) {
			t.Errorf("second create: %v", err)
		}
		if _, err := a.Create(ctx, "bob", "short", false); !errors.Is(err, ErrWeakPassword) {
			t.Errorf("weak password: %v", err)
		}
		if err := a.CheckCredentials(ctx, "alice", "correct horse"); err != nil {
			t.Errorf("right password: %v", err)
		}
		for _, c := range [][2]string{{"alice", "wrong horse"}, {"nobody", "correct horse"}} {
			if err := a.CheckCredentials(ctx, c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("CheckCredentials(%q, %q) = %v", c[0], c[1], err)
			}
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			_, err := tx.DeactivateAccount(ctx, "alice", 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := a.CheckCredentials(ctx, "alice", "correct horse"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("deactivated account: %v", err)
		}
	})
}

func TestTokens(t *testing.T) {
	a, b := NewToken(AccessTokenPrefix), NewToken(AccessTokenPrefix)
	if a == b || len(a) != len(AccessTokenPrefix)+43 {
		t.Errorf("tokens %q %q", a, b)
	}
	if HashToken(a) == HashToken(b) || len(HashToken(a)) != 64 || HashToken(a) != HashToken(a) {
		t.Error("HashToken is not a SHA-256 hex digest")
	}
	if id := NewDeviceID(); len(id) != 10 {
		t.Errorf("device id %q", id)
	}
	if err := New(nil, "example.org").ValidateLocalpart(NewLocalpart()); err != nil {
		t.Errorf("generated localpart invalid: %v", err)
	}
}
