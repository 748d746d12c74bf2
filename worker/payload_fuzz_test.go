package worker

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/poolctl/poolctl/queue"
)

// FuzzDecodePayload: no input panics the decoder, whatever it accepts has
// a non-empty class and args that are a JSON array, and a reply_to it
// hands on (accepted, or with an error, to reply the failure to) is one
// queue.ValidateReplyTo accepts: never a queue or another of Resque's keys.
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
		`{"class":"A","args":[],"reply_to":"r:1","correlation_id":"c"}`,
		`{"class":"A","args":"x","reply_to":"r","correlation_id":5}`,
		`{"class":"A","reply_to":"queue:foo"}`,
		`{"class":"A","reply_to":"poolctl:reply:x"}`,
		`{"class":"A","reply_to":["r"]}`,
		`{"class":7,"reply_to":"r\u00fc"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodePayload(raw)
		if err != nil {
			if p != nil {
				t.Fatalf("both a payload and an error for %q", raw)
			}
			var pe *PayloadError
			if errors.As(err, &pe) && pe.ReplyTo != "" && queue.ValidateReplyTo(pe.ReplyTo) != nil {
				t.Fatalf("a failure to reply to the invalid reply_to %q from %q", pe.ReplyTo, raw)
			}
			return
		}
		if p.ReplyTo != "" && queue.ValidateReplyTo(p.ReplyTo) != nil {
			t.Fatalf("accepted the invalid reply_to %q from %q", p.ReplyTo, raw)
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
