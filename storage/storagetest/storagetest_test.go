package storagetest

import (
	"fmt"
	"testing"

	"myelin/storage"
)

// fakeT records how a helper gave up. Fatalf and Skipf stop the helper by panicking, as the
// real ones stop the goroutine.
type fakeT struct {
	testing.TB
	outcome string
}

type stopped struct{}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(func())        {}
func (f *fakeT) Fatalf(string, ...any) { f.outcome = "failed"; panic(stopped{}) }
func (f *fakeT) Skipf(string, ...any)  { f.outcome = "skipped"; panic(stopped{}) }

func run(f *fakeT, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(stopped); !ok {
				panic(p)
			}
		}
	}()
	fn()
}

func TestUnreachablePostgresFailsRatherThanSkips(t *testing.T) {
	// Port 1 on loopback refuses connections at once.
	t.Setenv(PostgresEnv, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	f := &fakeT{TB: t}
	run(f, func() { NewConfig(f, storage.Postgres) })
	if f.outcome != "failed" {
		t.Errorf("with an unreachable server the helper %s; want it to fail", fmt.Sprint(f.outcome))
	}
}

func TestUnsetPostgresSkips(t *testing.T) {
	t.Setenv(PostgresEnv, "")
	f := &fakeT{TB: t}
	run(f, func() { NewConfig(f, storage.Postgres) })
	if f.outcome != "skipped" {
		t.Errorf("with %s unset the helper %q; want it to skip", PostgresEnv, f.outcome)
	}
}
