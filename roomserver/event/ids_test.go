package event

import (
	"errors"
	"strings"
	"testing"
)

func TestParseServerName(t *testing.T) {
	valid := []string{
		"matrix.org", "matrix.org:8888", "1.2.3.4", "1.2.3.4:1234", "[1234:5678::abcd]", "[1234:5678::abcd]:5678",
		"localhost", "MATRIX.ORG", "a-b.c", "[::1]:8448",
	}
	invalid := []string{
		"", ":80", "matrix.org:", "matrix.org:123456", "matrix.org:8a", "matrix_org", "mat rix.org", "[1234:5678::abcd",
		"[zz::1]", "[::1%eth0]", "::1", "[1.2.3.4]", "ex@mple.org", strings.Repeat("a", 256),
	}
	for _, s := range valid {
		if n, err := ParseServerName(s); err != nil || n.String() != s {
			t.Errorf("ParseServerName(%q) = %q, %v", s, n, err)
		}
	}
	for _, s := range invalid {
		if _, err := ParseServerName(s); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseServerName(%q) accepted", s)
		}
	}
	for s, want := range map[string][2]string{
		"a.b": {"a.b", ""}, "a.b:1": {"a.b", "1"}, "[::1]": {"[::1]", ""}, "[::1]:8": {"[::1]", "8"},
	} {
		if h, p := ServerName(s).Split(); h != want[0] || p != want[1] {
			t.Errorf("Split(%q) = %q, %q", s, h, p)
		}
	}
}

func TestUserID(t *testing.T) {
	tests := []struct {
		in, local, domain string
		compliant         bool
	}{
		{"@alice:example.org", "alice", "example.org", true},
		{"@a.b_c=d-e/f+g:example.org:8448", "a.b_c=d-e/f+g", "example.org:8448", true},
		{"@Alice:example.org", "Alice", "example.org", true}, // historical, still U+0021..U+007E
		{"@:example.org", "", "example.org", false},
		{"@ali ce:example.org", "ali ce", "example.org", false},
		{"@日本:[::1]", "日本", "[::1]", false},
	}
	for _, tt := range tests {
		u, err := ParseUserID(tt.in)
		if err != nil {
			t.Errorf("ParseUserID(%q): %v", tt.in, err)
			continue
		}
		if u.Local() != tt.local || string(u.Domain()) != tt.domain || u.String() != tt.in || u.Compliant() != tt.compliant {
			t.Errorf("ParseUserID(%q) = %q %q %v", tt.in, u.Local(), u.Domain(), u.Compliant())
		}
	}
	for _, s := range []string{"alice:example.org", "@alice", "@alice:", "@alice:bad_domain", "@a\x00b:x.org",
		"@" + strings.Repeat("a", 250) + ":example.org", "@\xff:x.org"} {
		if _, err := ParseUserID(s); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseUserID(%q) accepted", s)
		}
	}
	if u, err := NewUserID("alice.1", "example.org"); err != nil || u.String() != "@alice.1:example.org" {
		t.Errorf("NewUserID: %v, %v", u, err)
	}
	for _, local := range []string{"", "Alice", "al ice", "al:ice", "日本", "a#b"} {
		if _, err := NewUserID(local, "example.org"); !errors.Is(err, ErrInvalidID) {
			t.Errorf("NewUserID(%q) accepted", local)
		}
	}
}

func TestRoomID(t *testing.T) {
	r, err := ParseRoomID("!abc:example.org")
	if err != nil || r.Local() != "abc" || r.Domain() != "example.org" || r.String() != "!abc:example.org" {
		t.Errorf("v1 room id: %v %v", r, err)
	}
	r, err = ParseRoomID("!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ")
	if err != nil || r.Domain() != "" || r.String() != "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ" {
		t.Errorf("v12 room id: %v %v", r, err)
	}
	for _, s := range []string{"", "!", "abc:example.org", "$abc", "!abc:bad_domain", "!" + strings.Repeat("a", 255)} {
		if _, err := ParseRoomID(s); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseRoomID(%q) accepted", s)
		}
	}
}
