package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxPayloadBytes is the largest payload a worker will decode; bigger ones
// are recorded as failures without being run.
const MaxPayloadBytes = 1 << 20

// Payload is a decoded Resque job payload.
type Payload struct {
	Class string
	Args  json.RawMessage // always a JSON array
}

// PayloadError says why a payload cannot be run.
type PayloadError struct{ Reason string }

func (e *PayloadError) Error() string { return e.Reason }

// DecodePayload validates and decodes a Resque payload
// {"class":"Name","args":[...]}. A missing "args" means no arguments.
func DecodePayload(raw []byte) (*Payload, error) {
	if len(raw) > MaxPayloadBytes {
		return nil, &PayloadError{fmt.Sprintf("payload of %d bytes exceeds the limit of %d bytes", len(raw), MaxPayloadBytes)}
	}
	var p struct {
		Class *json.RawMessage `json:"class"`
		Args  json.RawMessage  `json:"args"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, &PayloadError{fmt.Sprintf("payload is not a JSON object: %v", err)}
	}
	if p.Class == nil {
		return nil, &PayloadError{`payload has no "class"`}
	}
	var class string
	if err := json.Unmarshal(*p.Class, &class); err != nil {
		return nil, &PayloadError{fmt.Sprintf(`payload "class" must be a string, got %s`, truncate(string(*p.Class), 40))}
	}
	if class == "" {
		return nil, &PayloadError{`payload "class" is empty`}
	}
	args := bytes.TrimSpace(p.Args)
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		args = []byte("[]")
	case args[0] != '[':
		return nil, &PayloadError{fmt.Sprintf(`payload "args" must be an array, got %s`, truncate(string(args), 40))}
	}
	return &Payload{Class: class, Args: args}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
