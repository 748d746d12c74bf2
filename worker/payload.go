package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/poolctl/poolctl/queue"
)

// MaxPayloadBytes is the largest payload a worker will decode; bigger ones
// are recorded as failures without being run.
const MaxPayloadBytes = 1 << 20

// Payload is a decoded Resque job payload.
type Payload struct {
	Class string
	Args  json.RawMessage // always a JSON array
	// EnqueuedAt is the payload's enqueued_at (stamped by poolctl enqueue
	// and Sidekiq-style producers); zero when absent or not a usable time
	// (queue.ParseEnqueuedAt).
	EnqueuedAt time.Time
}

// PayloadError says why a payload cannot be run.
type PayloadError struct {
	Reason string
	// Class and EnqueuedAt are what could be read of the payload anyway
	// ("" and zero when nothing), for the job's timing.
	Class      string
	EnqueuedAt time.Time
}

func (e *PayloadError) Error() string { return e.Reason }

// DecodePayload validates and decodes a Resque payload
// {"class":"Name","args":[...]}. A missing "args" means no arguments.
func DecodePayload(raw []byte) (*Payload, error) {
	if len(raw) > MaxPayloadBytes {
		return nil, &PayloadError{Reason: fmt.Sprintf("payload of %d bytes exceeds the limit of %d bytes", len(raw), MaxPayloadBytes)}
	}
	var p struct {
		Class      *json.RawMessage `json:"class"`
		Args       json.RawMessage  `json:"args"`
		EnqueuedAt json.RawMessage  `json:"enqueued_at"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// Valid JSON of another type: say which, not Go's type.
			return nil, &PayloadError{Reason: "payload is not a JSON object: got a JSON " + te.Value}
		}
		return nil, &PayloadError{Reason: fmt.Sprintf("payload is not a JSON object: %v", err)}
	}
	var enqueued time.Time
	if p.EnqueuedAt != nil {
		enqueued, _ = queue.ParseEnqueuedAt(p.EnqueuedAt)
	}
	if p.Class == nil {
		return nil, &PayloadError{Reason: `payload has no "class"`, EnqueuedAt: enqueued}
	}
	var class string
	if err := json.Unmarshal(*p.Class, &class); err != nil {
		return nil, &PayloadError{Reason: fmt.Sprintf(`payload "class" must be a string, got %s`, truncate(string(*p.Class), 40)), EnqueuedAt: enqueued}
	}
	if class == "" {
		return nil, &PayloadError{Reason: `payload "class" is empty`, EnqueuedAt: enqueued}
	}
	args := bytes.TrimSpace(p.Args)
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		args = []byte("[]")
	case args[0] != '[':
		return nil, &PayloadError{Reason: fmt.Sprintf(`payload "args" must be an array, got %s`, truncate(string(args), 40)), Class: class, EnqueuedAt: enqueued}
	}
	return &Payload{Class: class, Args: args, EnqueuedAt: enqueued}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
