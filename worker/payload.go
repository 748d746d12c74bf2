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
	// ReplyTo and CorrelationID are the payload's "reply_to" (valid by
	// queue.ValidateReplyTo; "" when absent) and "correlation_id": where
	// to send the job's status replies (docs/messages.md).
	ReplyTo       string
	CorrelationID string
}

// PayloadError says why a payload cannot be run.
type PayloadError struct {
	Reason string
	// Class and EnqueuedAt are what could be read of the payload anyway
	// ("" and zero when nothing), for the job's timing.
	Class      string
	EnqueuedAt time.Time
	// ReplyTo and CorrelationID, when ReplyTo is not "", are the payload's
	// valid reply_to and its correlation_id: the failure is replied there.
	ReplyTo       string
	CorrelationID string
}

func (e *PayloadError) Error() string { return e.Reason }

// DecodePayload validates and decodes a Resque payload
// {"class":"Name","args":[...]}. A missing "args" means no arguments.
// "reply_to" and "correlation_id" are read first, so that a payload that
// is an object but is otherwise wrong can still be replied to; a
// reply_to that is not a string or fails queue.ValidateReplyTo makes the
// payload bad (and cannot be replied to).
func DecodePayload(raw []byte) (*Payload, error) {
	if len(raw) > MaxPayloadBytes {
		return nil, &PayloadError{Reason: fmt.Sprintf("payload of %d bytes exceeds the limit of %d bytes", len(raw), MaxPayloadBytes)}
	}
	var p struct {
		Class      *json.RawMessage `json:"class"`
		Args       json.RawMessage  `json:"args"`
		EnqueuedAt json.RawMessage  `json:"enqueued_at"`
		ReplyTo    json.RawMessage  `json:"reply_to"`
		Corr       json.RawMessage  `json:"correlation_id"`
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
	var class string
	if p.Class != nil {
		_ = json.Unmarshal(*p.Class, &class) // checked below
	}
	replyTo, corr, reason := decodeReply(p.ReplyTo, p.Corr)
	bad := func(reason string) error {
		return &PayloadError{Reason: reason, Class: class, EnqueuedAt: enqueued, ReplyTo: replyTo, CorrelationID: corr}
	}
	if reason != "" {
		return nil, bad(reason)
	}
	if p.Class == nil {
		return nil, bad(`payload has no "class"`)
	}
	if err := json.Unmarshal(*p.Class, &class); err != nil {
		return nil, bad(fmt.Sprintf(`payload "class" must be a string, got %s`, truncate(string(*p.Class), 40)))
	}
	if class == "" {
		return nil, bad(`payload "class" is empty`)
	}
	args := bytes.TrimSpace(p.Args)
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		args = []byte("[]")
	case args[0] != '[':
		return nil, bad(fmt.Sprintf(`payload "args" must be an array, got %s`, truncate(string(args), 40)))
	}
	return &Payload{Class: class, Args: args, EnqueuedAt: enqueued, ReplyTo: replyTo, CorrelationID: corr}, nil
}

// decodeReply reads a payload's reply_to and correlation_id. A reply_to
// that cannot be used yields a reason and no reply_to; a correlation_id
// that is not a string yields a reason too, and its JSON text as the
// correlation id, so that the requester can still match the failure.
func decodeReply(rawTo, rawCorr json.RawMessage) (replyTo, corr, reason string) {
	if rawCorr != nil && !bytes.Equal(rawCorr, []byte("null")) {
		if json.Unmarshal(rawCorr, &corr) != nil {
			corr = truncate(string(rawCorr), 200)
			reason = fmt.Sprintf(`payload "correlation_id" must be a string, got %s`, truncate(string(rawCorr), 40))
		}
	}
	if rawTo == nil || bytes.Equal(rawTo, []byte("null")) {
		return "", corr, reason
	}
	if err := json.Unmarshal(rawTo, &replyTo); err != nil {
		return "", corr, fmt.Sprintf(`payload "reply_to" must be a string, got %s`, truncate(string(rawTo), 40))
	}
	if err := queue.ValidateReplyTo(replyTo); err != nil {
		return "", corr, "payload " + err.Error()
	}
	return replyTo, corr, reason
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
