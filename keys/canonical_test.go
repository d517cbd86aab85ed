package keys

import (
	"errors"
	"strings"
	"testing"
)

// The examples of the spec's appendix "Canonical JSON", plus the edge cases around them.
func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty object", `{}`, `{}`},
		{"spec: one two", "{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"one":1,"two":"Two"}`},
		{"spec: sorted", "{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", `{"a":"1","b":"2"}`},
		{"spec: compact unsorted", `{"b":"2","a":"1"}`, `{"a":"1","b":"2"}`},
		{"spec: nested", `{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}`, `{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}`},
		{"spec: unicode value", `{"a": "日本語"}`, `{"a":"日本語"}`},
		{"spec: unicode keys", `{"本": 2, "日": 1}`, `{"日":1,"本":2}`},
		{"spec: unicode escape", `{"a": "\u65E5"}`, `{"a":"日"}`},
		{"spec: null", `{"a": null}`, `{"a":null}`},
		{"spec: numbers", `{"a": -0, "b": 1e10}`, `{"a":0,"b":10000000000}`},

		{"top-level array", ` [1, "x", true, false, null, [], {}] `, `[1,"x",true,false,null,[],{}]`},
		{"top-level string", `"x"`, `"x"`},
		{"escapes kept", `"\" \\ \b \f \n \r \t"`, `"\" \\ \b \f \n \r \t"`},
		{"solidus unescaped", `"\/"`, `"/"`},
		{"control escapes lowercase", `"\u0001\u001F\u000b"`, `"\u0001\u001f\u000b"`},
		{"DEL and separators raw", `"\u007f\u2028"`, "\"\x7f\u2028\""},
		{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
		{"escaped ascii", `"\u0041"`, `"A"`},
		{"key order by code point not escape", `{"\u000a":1,"\u0009":2,"a":3}`, `{"\t":2,"\n":1,"a":3}`},
		{"key order astral after BMP", `{"😀":1,"ｚ":2}`, `{"ｚ":2,"😀":1}`},
		{"nested unsorted inside sorted", `{"a":{"z":1,"y":2},"b":[{"d":1,"c":2}]}`, `{"a":{"y":2,"z":1},"b":[{"c":2,"d":1}]}`},
		{"big integer kept", `{"a": 123456789012345678901234567890}`, `{"a":123456789012345678901234567890}`},
		{"negative integer", `-42`, `-42`},
		{"float integral", `[1.0, 2.50e1, -3E0, 1e22]`, `[1,25,-3,10000000000000000000000]`},
		{"float fraction", `[1.5, 0.0001, 1.5e-5, 30466.666666666664]`, `[1.5,0.0001,1.5e-05,30466.666666666664]`},
		{"negative zero float", `[-0.0, -0e5]`, `[0,0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalJSON([]byte(tt.in))
			if err != nil {
				t.Fatalf("CanonicalJSON(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("CanonicalJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
			again, err := CanonicalJSON(got)
			if err != nil || string(again) != tt.want {
				t.Fatalf("not idempotent: %s, %v", again, err)
			}
		})
	}
}

func TestCanonicalJSONInvalid(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{a:1}`, `{'a':1}`,
		`{"a":1}x`, `{"a":1} {}`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", "\"\xff\"",
		`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `01`, `-`, `1.`, `.5`, `1e`, `+1`, `NaN`,
		`Infinity`, `-Infinity`, `tru`, `nul`, `1e400`, `{"a":1,"a":2}`, `{"b":1,"a":2,"b":3}`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	} {
		if out, err := CanonicalJSON([]byte(in)); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("CanonicalJSON(%q) = %s, %v; want ErrInvalidJSON", in, out, err)
		}
	}
}

func TestCheckStrictValues(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"a":1,"b":[-1,0,"1.5"]}`, true},
		{`{"a":9007199254740991}`, true},
		{`{"a":-9007199254740991}`, true},
		{`{"a":-0}`, true},
		{`{"a":9007199254740992}`, false},
		{`{"a":-9007199254740992}`, false},
		{`{"a":123456789012345678901234567890}`, false},
		{`{"a":1.0}`, false},
		{`{"a":1e10}`, false},
		{`{"a":1E2}`, false},
		{`{"a":{"b":[0.5]}}`, false},
	}
	for _, tt := range tests {
		err := CheckStrictValues([]byte(tt.in))
		if tt.ok && err != nil {
			t.Errorf("CheckStrictValues(%s) = %v, want nil", tt.in, err)
		}
		if !tt.ok && !errors.Is(err, ErrNonStrictValue) {
			t.Errorf("CheckStrictValues(%s) = %v, want ErrNonStrictValue", tt.in, err)
		}
	}
	if err := CheckStrictValues([]byte(`{"a":NaN}`)); !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("NaN: %v, want ErrInvalidJSON", err)
	}
}

func TestObject(t *testing.T) {
	o, err := ParseObject([]byte(`{"b": {"y":1, "x":2}, "a": "\n", "c": [ 1 ]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(o.JSON()); got != `{"a":"\n","b":{"x":2,"y":1},"c":[1]}` {
		t.Fatalf("JSON = %s", got)
	}
	if v, ok := o.Get("b"); !ok || string(v) != `{"x":2,"y":1}` {
		t.Fatalf("Get(b) = %s, %v", v, ok)
	}
	if _, ok := o.Get("z"); ok {
		t.Fatal("Get(z) found")
	}
	if got := string(o.Without("b", "z").JSON()); got != `{"a":"\n","c":[1]}` {
		t.Fatalf("Without = %s", got)
	}
	if got := string(o.Keep("c", "z").JSON()); got != `{"c":[1]}` {
		t.Fatalf("Keep = %s", got)
	}
	if got := string(o.With("bb", Quote("q\"")).With("a", []byte("1")).JSON()); got != `{"a":1,"b":{"x":2,"y":1},"bb":"q\"","c":[1]}` {
		t.Fatalf("With = %s", got)
	}
	if got := string(o.JSON()); got != `{"a":"\n","b":{"x":2,"y":1},"c":[1]}` {
		t.Fatalf("With modified the receiver: %s", got)
	}
	if s, ok := Unquote(Quote("a\"\\\n\x01é")); !ok || s != "a\"\\\n\x01é" {
		t.Fatalf("Unquote(Quote) = %q, %v", s, ok)
	}
	for _, in := range []string{`[]`, `"x"`, `1`} {
		if _, err := ParseObject([]byte(in)); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("ParseObject(%s) = %v", in, err)
		}
	}
}

func TestBase64(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy",
	} {
		if got := EncodeBase64([]byte(in)); got != want {
			t.Errorf("EncodeBase64(%q) = %q, want %q", in, got, want)
		}
		for _, enc := range []string{want, want + strings.Repeat("=", (4-len(want)%4)%4)} {
			if got, err := DecodeBase64(enc); err != nil || string(got) != in {
				t.Errorf("DecodeBase64(%q) = %q, %v", enc, got, err)
			}
		}
	}
	raw := []byte{0xfb, 0xff, 0xbf}
	if EncodeBase64(raw) != "+/+/" || EncodeBase64URL(raw) != "-_-_" {
		t.Fatalf("alphabets: %s %s", EncodeBase64(raw), EncodeBase64URL(raw))
	}
	for _, enc := range []string{"+/+/", "-_-_"} {
		if got, err := DecodeBase64(enc); err != nil || string(got) != string(raw) {
			t.Errorf("DecodeBase64(%q) = %x, %v", enc, got, err)
		}
	}
	if _, err := DecodeBase64("a!b"); err == nil {
		t.Error("DecodeBase64 accepted garbage")
	}
}
