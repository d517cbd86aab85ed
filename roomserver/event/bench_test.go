package event

import (
	"encoding/json"
	"testing"
)

func benchProto() Proto {
	return Proto{
		Type: "m.room.message", Sender: "@alice:example.org", RoomID: "!jEsUZKDJdhlrceRyVU:example.org",
		Content: json.RawMessage(`{"msgtype":"m.text","body":"Hello \"world\" — an ordinary message with some unicode: 日本語 😀\nsecond line",` +
			`"format":"org.matrix.custom.html","formatted_body":"<p>Hello &quot;world&quot; — an ordinary message</p>",` +
			`"m.relates_to":{"m.in_reply_to":{"event_id":"$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"}}}`),
		PrevEvents: []string{"$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"},
		AuthEvents: []string{"$oDq1Bk6Z2ycnAT8W1v8ZyCk0EFYn4qPX7Kj5PrFo1xw", "$Ixa4DgH1nxbwq0tMkl2iZ6CBNcNtsoASRh5AqA5pa5U",
			"$M0hUZMIETqTgH3OYX3jB5tFq8wXU3tFjd3rF9lBvQ5E"},
		Depth: 4821, OriginServerTS: 1719833912345,
	}
}

// BenchmarkParse is the cost of accepting a PDU: canonical JSON, field checks and the event id
// (reference hash).
func BenchmarkParse(b *testing.B) {
	v := MustVersion("11")
	e, err := Build(benchProto(), v, "example.org", specKey(b))
	if err != nil {
		b.Fatal(err)
	}
	raw := e.JSON()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventID(b *testing.B) {
	v := MustVersion("11")
	e, err := Build(benchProto(), v, "example.org", specKey(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.ReferenceHash(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	v, k, p := MustVersion("11"), specKey(b), benchProto()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(p, v, "example.org", k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignatures(b *testing.B) {
	v, k := MustVersion("11"), specKey(b)
	e, err := Build(benchProto(), v, "example.org", k)
	if err != nil {
		b.Fatal(err)
	}
	lookup := lookupFor(k, "example.org")
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifySignatures(e, lookup); err != nil {
			b.Fatal(err)
		}
	}
}
