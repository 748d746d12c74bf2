package worker

import (
	"encoding/json"
	"testing"
)

// FuzzDecodePayload: no input panics the decoder, and whatever it accepts
// has a non-empty class and args that are a JSON array.
func FuzzDecodePayload(f *testing.F) {
	for _, seed := range []string{
		`{"class":"Poolctl::Noop","args":[]}`,
		`{"class":"A","args":[1,"two",{"k":3}]}`,
		`{"class":"A"}`,
		`{"class":"A","args":null}`,
		`{"class":"A","args":"x"}`,
		`{"class":7}`,
		`not json`,
		`[1,2]`,
		``,
		`{"class":"A","args":[` + "\xff" + `]}`,
		`{"class":"A","args":[],"enqueued_at":1795337900.123456}`,
		`{"class":"A","args":[],"enqueued_at":"1795337900"}`,
		`{"class":"A","enqueued_at":-1e309}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodePayload(raw)
		if err != nil {
			if p != nil {
				t.Fatalf("both a payload and an error for %q", raw)
			}
			return
		}
		if !p.EnqueuedAt.IsZero() && p.EnqueuedAt.Unix() <= 0 {
			t.Fatalf("accepted enqueued_at %v from %q", p.EnqueuedAt, raw)
		}
		if p.Class == "" {
			t.Fatalf("accepted an empty class: %q", raw)
		}
		var args []json.RawMessage
		if json.Unmarshal(p.Args, &args) != nil {
			t.Fatalf("accepted args that are not an array: %q -> %s", raw, p.Args)
		}
	})
}
