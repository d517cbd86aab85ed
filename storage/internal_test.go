package storage

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestConfigResolve(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		dialect Dialect
		target  string
		wantErr bool
	}{
		{name: "sqlite path", cfg: Config{SQLitePath: "/var/lib/myelin/db"}, dialect: SQLite, target: "/var/lib/myelin/db"},
		{name: "sqlite: relative", cfg: Config{URL: "sqlite:data/myelin.db"}, dialect: SQLite, target: "data/myelin.db"},
		{name: "sqlite:// relative", cfg: Config{URL: "sqlite://data/myelin.db"}, dialect: SQLite, target: "data/myelin.db"},
		{name: "sqlite:/// absolute", cfg: Config{URL: "sqlite:///var/lib/myelin.db"}, dialect: SQLite, target: "/var/lib/myelin.db"},
		{name: "url wins over path", cfg: Config{URL: "sqlite:a.db", SQLitePath: "b.db"}, dialect: SQLite, target: "a.db"},
		{name: "postgres", cfg: Config{URL: "postgres://u@h/db"}, dialect: Postgres, target: "postgres://u@h/db"},
		{name: "postgresql", cfg: Config{URL: "postgresql://u@h/db"}, dialect: Postgres, target: "postgresql://u@h/db"},
		{name: "nothing", cfg: Config{}, wantErr: true},
		{name: "empty sqlite url", cfg: Config{URL: "sqlite:"}, wantErr: true},
		{name: "mysql", cfg: Config{URL: "mysql://u:secret@h/db"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, target, err := tt.cfg.resolve()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("resolve() = %v, %q; want an error", d, target)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error repeats the URL's password: %v", err)
				}
				return
			}
			if err != nil || d != tt.dialect || target != tt.target {
				t.Errorf("resolve() = %v, %q, %v; want %v, %q", d, target, err, tt.dialect, tt.target)
			}
		})
	}
}

func TestSQLiteSynchronous(t *testing.T) {
	for in, want := range map[string]string{"": "NORMAL", "normal": "NORMAL", "Full": "FULL"} {
		if got, err := sqliteSynchronous(in); err != nil || got != want {
			t.Errorf("sqliteSynchronous(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := sqliteSynchronous("off"); err == nil {
		t.Error(`sqliteSynchronous("off") succeeded; only normal and full are durable enough`)
	}
}

func TestRebind(t *testing.T) {
	tests := []struct{ in, sqlite string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT $1, $2", "SELECT ?1, ?2"},
		{"SELECT $2, $1, $1", "SELECT ?2, ?1, ?1"},
		{"SELECT $10", "SELECT ?10"},
		{"SELECT '$1', $1", "SELECT '$1', ?1"},
		{"SELECT 'it''s $1', $1", "SELECT 'it''s $1', ?1"},
		{`SELECT "col$1", $1`, `SELECT "col$1", ?1`},
		{"SELECT $1 -- $2\n, $2", "SELECT ?1 -- $2\n, ?2"},
		{"SELECT /* $1 */ $1", "SELECT /* $1 */ ?1"},
		{"SELECT $a, $", "SELECT $a, $"},
		{"SELECT 'unterminated $1", "SELECT 'unterminated $1"},
	}
	for _, tt := range tests {
		if got := SQLite.rebind(tt.in); got != tt.sqlite {
			t.Errorf("SQLite.rebind(%q) = %q; want %q", tt.in, got, tt.sqlite)
		}
		if got := Postgres.rebind(tt.in); got != tt.in {
			t.Errorf("Postgres.rebind(%q) = %q; want it unchanged", tt.in, got)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name     string
		files    fstest.MapFS
		sqlite   []string // SQL per version, in order
		postgres []string
		wantErr  string
	}{
		{
			name: "shared and paired files, sorted by version",
			files: fstest.MapFS{
				"0002_rooms.sqlite.sql":   file("s2"),
				"0002_rooms.postgres.sql": file("p2"),
				"0001_init.sql":           file("c1"),
				"0010_later.sql":          file("c10"),
			},
			sqlite:   []string{"c1", "s2", "c10"},
			postgres: []string{"c1", "p2", "c10"},
		},
		{name: "half a pair", files: fstest.MapFS{"0001_init.sqlite.sql": file("")}, wantErr: "needs both"},
		{name: "shared and per-dialect", files: fstest.MapFS{"0001_init.sql": file(""), "0001_init.postgres.sql": file(""), "0001_init.sqlite.sql": file("")}, wantErr: "both a shared"},
		{name: "two names", files: fstest.MapFS{"0001_init.sql": file(""), "0001_other.sqlite.sql": file("")}, wantErr: "two names"},
		{name: "bad name", files: fstest.MapFS{"1_init.sql": file("")}, wantErr: "not named"},
		{name: "version zero", files: fstest.MapFS{"0000_init.sql": file("")}, wantErr: "start at 0001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for d, want := range map[Dialect][]string{SQLite: tt.sqlite, Postgres: tt.postgres} {
				got, err := loadMigrations(tt.files, d)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("%v: err = %v; want one containing %q", d, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%v: %v", d, err)
				}
				var sqls []string
				for _, m := range got {
					sqls = append(sqls, m.sql)
				}
				if strings.Join(sqls, ",") != strings.Join(want, ",") {
					t.Errorf("%v: migrations = %v; want %v", d, sqls, want)
				}
			}
		})
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := loadMigrations(embeddedMigrations(), d)
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if len(ms) == 0 || ms[0].version != 1 {
			t.Fatalf("%v: first migration is not 0001", d)
		}
	}
}

func TestBinaryChunks(t *testing.T) {
	for n := range 200 {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		var got []int
		sizes := map[int]bool{}
		for c := range binaryChunks(s, 64) {
			if len(c) == 0 || len(c) > 64 || len(c)&(len(c)-1) != 0 {
				t.Fatalf("n=%d: chunk of %d rows", n, len(c))
			}
			sizes[len(c)] = true
			got = append(got, c...)
		}
		if !slices.Equal(got, s) {
			t.Fatalf("n=%d: chunks joined give %v", n, got)
		}
		if len(sizes) > 7 {
			t.Fatalf("n=%d: %d sizes", n, len(sizes))
		}
	}
}
