// Package account manages local user accounts: creating them, checking passwords, and the rules
// for user ids. It is used by registration, login and the create-account command alike.
package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"myelin/storage"
)

// Errors a caller maps to Matrix error codes.
var (
	ErrInvalidUsername = errors.New("invalid username")
	ErrUserInUse       = errors.New("user id already taken")
	ErrWeakPassword    = errors.New("password too weak")
)

// MinPasswordLength is the shortest password accepted for a new account or a password change.
const MinPasswordLength = 8

// Accounts creates and checks local accounts.
type Accounts struct {
	db         *storage.DB
	serverName string
	now        func() time.Time
}

// New returns the account manager of a server.
func New(db *storage.DB, serverName string) *Accounts {
	return &Accounts{db: db, serverName: serverName, now: time.Now}
}

// ValidateLocalpart checks a new user's localpart against the user id grammar of the appendix
// (lower-case letters, digits and ._=-/+) and the 255-byte limit of the whole user id.
func (a *Accounts) ValidateLocalpart(localpart string) error {
	if localpart == "" {
		return fmt.Errorf("%w: empty", ErrInvalidUsername)
	}
	for _, c := range []byte(localpart) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '=' || c == '-' || c == '/' || c == '+'
		if !ok {
			return fmt.Errorf("%w: %q may only contain a-z, 0-9 and ._=-/+", ErrInvalidUsername, localpart)
		}
	}
	if len("@"+localpart+":"+a.serverName) > 255 {
		return fmt.Errorf("%w: the user id would be longer than 255 bytes", ErrInvalidUsername)
	}
	return nil
}

// UserID returns the full user id of a local localpart.
func (a *Accounts) UserID(localpart string) string { return "@" + localpart + ":" + a.serverName }

// Create makes a new account and returns its user id.
func (a *Accounts) Create(ctx context.Context, localpart, password string, admin bool) (string, error) {
	acc, err := a.Prepare(localpart, password, admin)
	if err != nil {
		return "", err
	}
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error { return a.Insert(ctx, tx, acc) })
	if err != nil {
		return "", err
	}
	return a.UserID(localpart), nil
}

// Prepare checks a new account's localpart and password and hashes the password, the slow part,
// so that it happens before any transaction begins.
func (a *Accounts) Prepare(localpart, password string, admin bool) (storage.Account, error) {
	if err := a.ValidateLocalpart(localpart); err != nil {
		return storage.Account{}, err
	}
	if err := CheckPasswordStrength(password); err != nil {
		return storage.Account{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return storage.Account{}, err
	}
	return storage.Account{Localpart: localpart, PasswordHash: hash, IsAdmin: admin, CreatedTS: a.now().UnixMilli()}, nil
}

// Insert stores a prepared account within tx; ErrUserInUse if the localpart was ever taken.
func (a *Accounts) Insert(ctx context.Context, tx *storage.Tx, acc storage.Account) error {
	err := tx.InsertAccount(ctx, acc)
	if errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("%w: %s", ErrUserInUse, a.UserID(acc.Localpart))
	}
	return err
}

// CheckPasswordStrength refuses passwords too short to be worth hashing.
func CheckPasswordStrength(password string) error {
	if len(password) < MinPasswordLength {
		return fmt.Errorf("%w: at least %d characters are required", ErrWeakPassword, MinPasswordLength)
	}
	return nil
}
