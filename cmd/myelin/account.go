package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"myelin/clientapi/account"
	"myelin/config"
	"myelin/storage"
)

func runCreateAccount(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("create-account", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file")
	username := fs.String("username", "", "the new user's localpart (required)")
	admin := fs.Bool("admin", false, "make the user a server administrator")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *username == "" {
		fmt.Fprintln(stderr, "--username is required")
		fs.Usage()
		return errUsage
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	return withDatabase(ctx, *path, func(cfg *config.Config, db *storage.DB) error {
		userID, err := account.New(db, cfg.ServerName).Create(ctx, strings.ToLower(*username), password, *admin)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s\n", userID)
		return nil
	})
}

// readPassword asks twice on a terminal, or reads one line from stdin when it is not a terminal.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords differ")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

// withDatabase loads the configuration at path and runs fn with its database open, for the
// administrative commands.
func withDatabase(ctx context.Context, path string, fn func(cfg *config.Config, db *storage.DB) error) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(cfg, db)
}

// openDatabase opens the configured database for an administrative command.
func openDatabase(ctx context.Context, cfg *config.Config) (*storage.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	db, err := storage.Open(ctx, storage.Config{
		URL: cfg.Database.URL, SQLitePath: cfg.SQLitePath(),
		Synchronous: cfg.Database.Synchronous, MaxOpenConns: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	return db, nil
}

func runCreateRegistrationToken(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("create-registration-token", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file")
	uses := fs.Int64("uses", 1, "how many registrations the token allows (0: unlimited)")
	validFor := fs.Duration("valid-for", 7*24*time.Hour, "how long the token stays valid (0: forever)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *uses < 0 || *validFor < 0 {
		fmt.Fprintln(stderr, "--uses and --valid-for must not be negative")
		fs.Usage()
		return errUsage
	}
	return withDatabase(ctx, *path, func(_ *config.Config, db *storage.DB) error {
		// 18 random bytes in URL-safe base64: 24 characters of the spec's [A-Za-z0-9._~-] alphabet.
		var raw [18]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return err
		}
		token := base64.RawURLEncoding.EncodeToString(raw[:])
		now := time.Now()
		t := storage.RegistrationToken{Hash: account.HashToken(token), UsesAllowed: *uses, CreatedTS: now.UnixMilli()}
		if *validFor > 0 {
			t.ExpiryTS = now.Add(*validFor).UnixMilli()
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertRegistrationToken(ctx, t) }); err != nil {
			return err
		}
		// The token is shown once; only its hash is stored.
		fmt.Fprintln(stdout, token)
		return nil
	})
}
