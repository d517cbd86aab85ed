package event

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestDerived(t *testing.T) {
	e, err := Build(benchProto(), MustVersion("11"), "example.org", specKey(t))
	if err != nil {
		t.Fatal(err)
	}
	type keyA struct{}
	type keyB struct{}
	var calls atomic.Int32
	var wg sync.WaitGroup
	got := make([]any, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = e.Derived(keyA{}, func() any { return int(calls.Add(1)) })
		}()
	}
	wg.Wait()
	// Concurrent first calls may each compute, but all of them get the value that was kept.
	for _, g := range got {
		if g != got[0] {
			t.Fatalf("Derived returned %v and %v for one key", got[0], g)
		}
	}
	if again := e.Derived(keyA{}, func() any { t.Fatal("computed again"); return nil }); again != got[0] {
		t.Fatalf("Derived returned %v after %v", again, got[0])
	}
	if b := e.Derived(keyB{}, func() any { return "b" }); b != "b" {
		t.Fatalf("a second key got %v", b)
	}
}
