package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"myelin/config"
	"myelin/keys"
)

func runGenerateConfig(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("generate-config", stderr)
	var o config.GenerateOptions
	fs.StringVar(&o.ServerName, "server-name", "", "the server name (default localhost)")
	fs.StringVar(&o.DataDir, "data-dir", "", "the data directory (default ./myelin-data)")
	fs.StringVar(&o.ClientListen, "client-listen", "", "client API listen address (default 127.0.0.1:8008)")
	fs.StringVar(&o.FederationListen, "federation-listen", "", "federation listen address (default 127.0.0.1:8448)")
	fs.StringVar(&o.DatabaseURL, "database", "", "a postgres:// URL (default: SQLite in the data directory)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out := config.Generate(o)
	// Check what we print, so that a bad flag value fails here rather than at the next start.
	if _, err := config.Parse("generated config", out); err != nil {
		return err
	}
	_, err := stdout.Write(out)
	return err
}

func runGenerateKeys(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("generate-keys", stderr)
	out := fs.String("out", "", "where to write the signing key (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "--out is required")
		fs.Usage()
		return errUsage
	}
	k, err := keys.GenerateSigningKey()
	if err != nil {
		return err
	}
	if err := keys.WriteSigningKey(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote signing key %s to %s\n", k.ID, *out)
	return nil
}

func runRotateKey(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("rotate-key", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	old, fresh, err := keys.RotateSigningKey(cfg.SigningKeyPath, cfg.RetiredKeysPath(), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "retired %s into %s; the server now signs with %s after a restart\n",
		old.ID, cfg.RetiredKeysPath(), fresh.ID)
	return nil
}
