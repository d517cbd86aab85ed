package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"myelin/storage"
)

// Errors of authentication. A wrong password, an unknown user and a deactivated account (whose
// password hash is erased) are all ErrBadCredentials, so that a stranger learns nothing about
// which accounts exist.
var (
	ErrBadCredentials = errors.New("wrong user name or password")
	ErrForeignUser    = errors.New("user is not on this server")
)

// LocalpartOf returns the localpart named by a login identifier: a full user id of this server or
// a bare localpart. Both are compared in lower case, since registration only creates lower-case
// localparts.
func (a *Accounts) LocalpartOf(user string) (string, error) {
	if strings.HasPrefix(user, "@") {
		local, server, ok := strings.Cut(user[1:], ":")
		if !ok || server != a.serverName {
			return "", fmt.Errorf("%w: %q", ErrForeignUser, user)
		}
		user = local
	}
	return strings.ToLower(user), nil
}

// CheckCredentials verifies a user's password. It spends the same argon2id work whether or not the
// account exists, so that timing does not reveal it either.
func (a *Accounts) CheckCredentials(ctx context.Context, localpart, password string) error {
	acc, err := storage.GetAccount(ctx, a.db, localpart)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	hash := acc.PasswordHash
	if hash == "" {
		hash = dummyHash()
	}
	ok, err := CheckPassword(hash, password)
	if err != nil {
		return err
	}
	if !ok || acc.PasswordHash == "" || acc.DeactivatedTS != 0 {
		return ErrBadCredentials
	}
	return nil
}

// ChangePassword hashes a new password (outside any transaction) for SetPassword.
func ChangePassword(newPassword string) (string, error) {
	if err := CheckPasswordStrength(newPassword); err != nil {
		return "", err
	}
	return HashPassword(newPassword)
}

var (
	dummyOnce sync.Once
	dummy     string
)

func dummyHash() string {
	dummyOnce.Do(func() { dummy, _ = HashPassword("myelin: no such account") })
	return dummy
}
