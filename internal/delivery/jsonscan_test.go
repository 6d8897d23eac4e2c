package delivery

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestEachMember: the scanner reads what encoding/json reads, escapes,
// nesting and spacing included, and refuses what it refuses.
func TestEachMember(t *testing.T) {
	good := []string{
		`{}`,
		` { "a" : 1 , "b":"x\"y\\z\u00e9" ,"c":{"d":[1,{"e":"}"}],"f":null},"g":[] ,"h":-1.5e3,"i":true}` + "\n",
		`{"data":{"id":7,"s":"a,b}c"},"metadata":{"stream-position":"0000/1"}}`,
		`{"k\"ey":"v"}`,
	}
	for _, in := range good {
		want := map[string]json.RawMessage{}
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got := map[string]json.RawMessage{}
		if err := eachMember([]byte(in), func(k, v []byte) error {
			got[string(k)] = append(json.RawMessage(nil), v...)
			return nil
		}); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		for k, v := range want {
			var a, b any
			json.Unmarshal(v, &a)
			if err := json.Unmarshal(got[k], &b); err != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("%s: member %q is %s, want %s", in, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d members, want %d", in, len(got), len(want))
		}
	}
	for _, in := range []string{``, `[]`, `{"a":1`, `{"a" 1}`, `{"a":"x}`, `{"a":1}x`, `{a:1}`, `{"a":}`} {
		if err := eachMember([]byte(in), func(k, v []byte) error { return nil }); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
