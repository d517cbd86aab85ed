package keys

import "testing"

func TestObjectEncode(t *testing.T) {
	o, err := ParseObject([]byte(`{"\n\u0001\"k":[1,{"a":"\t"}],"b":{},"c":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	o2, out := o.Encode()
	if string(out) != string(o.JSON()) {
		t.Fatalf("Encode JSON %s", out)
	}
	for i, m := range o2.Members() {
		if m.Key != o.Members()[i].Key || string(m.Value) != string(o.Members()[i].Value) {
			t.Fatalf("member %d: %q=%s, want %s", i, m.Key, m.Value, o.Members()[i].Value)
		}
	}
}

func TestNewObject(t *testing.T) {
	o := NewObject([]Member{{"b", []byte(`2`)}, {"a", []byte(`1`)}, {"c", []byte(`3`)}, {"a", []byte(`4`)}})
	if got := string(o.JSON()); got != `{"a":4,"b":2,"c":3}` {
		t.Fatalf("NewObject JSON %s", got)
	}
	if v, ok := o.Get("c"); !ok || string(v) != "3" {
		t.Fatalf("Get(c) = %s, %v", v, ok)
	}
}
