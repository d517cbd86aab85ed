package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	db, err := storage.Open(ctx, storage.Config{
		URL: cfg.Database.URL, SQLitePath: cfg.SQLitePath(),
		Synchronous: cfg.Database.Synchronous, MaxOpenConns: 2,
	})
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	userID, err := account.New(db, cfg.ServerName).Create(ctx, strings.ToLower(*username), password, *admin)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s\n", userID)
	return nil
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
