package storage

import (
	"context"
	"fmt"
	"io/fs"
	"testing/fstest"
)

// NewestMigration lets the external tests compare what was recorded with what is embedded.
func NewestMigration() (version, count int) {
	ms, err := loadMigrations(embeddedMigrations(), SQLite)
	if err != nil {
		panic(err)
	}
	return ms[len(ms)-1].version, len(ms)
}

// OpenMigratedTo opens the database cfg names with only the migrations up to version applied,
// so that a test can write rows as an older schema held them; Open then applies the rest.
func OpenMigratedTo(ctx context.Context, cfg Config, version int) (*DB, error) {
	all := embeddedMigrations()
	entries, err := fs.ReadDir(all, ".")
	if err != nil {
		return nil, err
	}
	older := fstest.MapFS{}
	for _, e := range entries {
		var v int
		if _, err := fmt.Sscanf(e.Name(), "%04d_", &v); err != nil || v > version {
			continue
		}
		data, err := fs.ReadFile(all, e.Name())
		if err != nil {
			return nil, err
		}
		older[e.Name()] = &fstest.MapFile{Data: data}
	}
	return open(ctx, cfg, older)
}
