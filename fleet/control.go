package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
)

// Limits of a control message.
const (
	// MaxCommandSize bounds a raw control message, in bytes.
	MaxCommandSize = 64 << 10
	// MaxCommandID bounds a command's id, in bytes.
	MaxCommandID = 256
	// MaxCount bounds a Vumi operation's count: the spec's own limit for
	// one queue list.
	MaxCount = spec.MaxCount
)

// Vumi's operations.
const (
	OpStartWorker = "start_worker"
	OpStopWorker  = "stop_worker"
)

// commandLineKeys are keys a sender might use to smuggle a command line;
// they get a refusal that says why, not just "unknown".
var commandLineKeys = []string{"argv", "command", "cmd"}

// commandKeys are the keys a Command has, exactly as spelt in JSON.
var commandKeys = []string{
	"id", "reply_to", "verb", "args", "expires_at",
	"operation", "worker_name", "worker_class", "worker_config", "queues", "count",
}

// vumiKeys only go with "operation".
var vumiKeys = []string{"worker_name", "worker_class", "worker_config", "queues", "count"}

// DecodeCommand decodes and validates a control message strictly: unknown
// keys (a command line among them) are refused with the key named.
func DecodeCommand(raw []byte) (Command, error) {
	if len(raw) > MaxCommandSize {
		return Command{}, fmt.Errorf("control message is %d bytes long; the limit is %d", len(raw), MaxCommandSize)
	}
	var fields map[string]json.RawMessage
	if err := decodeOne(raw, &fields, false); err != nil {
		return Command{}, fmt.Errorf("control message is not a JSON object: %w", err)
	}
	if fields == nil {
		return Command{}, errors.New("control message is not a JSON object: null")
	}
	if err := checkKeys(fields); err != nil {
		return Command{}, err
	}
	var c Command
	if err := decodeOne(raw, &c, true); err != nil {
		return Command{}, fmt.Errorf("control message: %w", err)
	}
	if err := c.validate(fields); err != nil {
		return Command{}, err
	}
	return c, nil
}

// decodeOne decodes exactly one JSON value from raw into v.
func decodeOne(raw []byte, v any, strict bool) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// checkKeys refuses keys a Command does not have, case-sensitively
// (encoding/json alone would take "ID" for "id").
func checkKeys(fields map[string]json.RawMessage) error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(commandLineKeys, strings.ToLower(k)) {
			return fmt.Errorf("control message has key %q: a control message can never carry a command line; it can only name queue lists, counts and verbs", k)
		}
	}
	for _, k := range keys {
		if !slices.Contains(commandKeys, k) {
			return fmt.Errorf("control message has unknown key %q (known: %s)", k, strings.Join(commandKeys, ", "))
		}
	}
	return nil
}

func (c *Command) validate(fields map[string]json.RawMessage) error {
	switch {
	case c.ID == "":
		return errors.New(`control message has no "id"`)
	case len(c.ID) > MaxCommandID:
		return fmt.Errorf(`control message "id" is %d bytes long; the limit is %d`, len(c.ID), MaxCommandID)
	}
	if err := queue.ValidateReplyTo(c.ReplyTo); err != nil {
		return fmt.Errorf("control message %s: %w", c.ID, err)
	}
	switch {
	case c.Verb == "" && c.Operation == "":
		return fmt.Errorf(`control message %s has neither "verb" nor "operation"`, c.ID)
	case c.Verb != "" && c.Operation != "":
		return fmt.Errorf(`control message %s has both "verb" and "operation"; send one`, c.ID)
	case c.Verb != "":
		for _, k := range vumiKeys {
			if _, ok := fields[k]; ok {
				return fmt.Errorf(`control message %s: key %q only goes with "operation", not with "verb"`, c.ID, k)
			}
		}
		return c.validateVerb()
	default:
		return c.validateOperation(fields)
	}
}

func (c *Command) validateVerb() error {
	for i, a := range c.Args {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("control message %s: argument %d of %s is empty", c.ID, i+1, c.Verb)
		}
	}
	switch c.Verb {
	case VerbPing, VerbStatus, VerbReload, VerbStop:
		if len(c.Args) > 0 {
			return fmt.Errorf("control message %s: %s takes no arguments, got %q", c.ID, c.Verb, c.Args)
		}
	case VerbConfig:
		if len(c.Args) == 0 {
			return fmt.Errorf(`control message %s: config needs at least one spec word, e.g. "foo=4"`, c.ID)
		}
	case VerbPause, VerbResume:
	case VerbAutoscale:
		if len(c.Args) == 0 || (c.Args[0] != "on" && c.Args[0] != "off") {
			return fmt.Errorf(`control message %s: autoscale needs "on" or "off" first, then optional queue lists`, c.ID)
		}
	default:
		return fmt.Errorf("control message %s: unknown verb %q (known: %s)", c.ID, c.Verb,
			strings.Join([]string{VerbPing, VerbStatus, VerbConfig, VerbReload, VerbPause, VerbResume, VerbStop, VerbAutoscale}, ", "))
	}
	return nil
}

func (c *Command) validateOperation(fields map[string]json.RawMessage) error {
	if c.Operation != OpStartWorker && c.Operation != OpStopWorker {
		return fmt.Errorf("control message %s: unknown operation %q (known: %s, %s)", c.ID, c.Operation, OpStartWorker, OpStopWorker)
	}
	if _, ok := fields["args"]; ok {
		return fmt.Errorf(`control message %s: key "args" goes with "verb", not with "operation"`, c.ID)
	}
	if c.Queues == "" {
		return fmt.Errorf(`control message %s: %s needs "queues", the queue list whose count it sets`, c.ID, c.Operation)
	}
	parsed, err := spec.ParseArgs([]string{c.Queues + "=1"})
	if err != nil || len(parsed) != 1 {
		return fmt.Errorf(`control message %s: "queues" %q is not one queue list (names separated by commas)`, c.ID, c.Queues)
	}
	if c.Count != nil {
		switch n := *c.Count; {
		case n < 0:
			return fmt.Errorf(`control message %s: "count" is %d; it must be 0 or more`, c.ID, n)
		case n > MaxCount:
			return fmt.Errorf(`control message %s: "count" is %d; the limit is %d workers per queue list`, c.ID, n, MaxCount)
		case c.Operation == OpStopWorker && n != 0:
			return fmt.Errorf(`control message %s: stop_worker sets the count to 0; drop "count" (it is %d)`, c.ID, n)
		}
	}
	return nil
}

// ConfigWords is the config change a Vumi operation stands for:
// start_worker sets Queues to Count (1 when absent), stop_worker to 0. It
// refuses a worker_class or worker_config that is not empty, as a pool
// only runs the commands its own config names.
func (c Command) ConfigWords() ([]string, error) {
	if c.WorkerClass != "" {
		return nil, errors.New("this pool only runs the commands its config names; worker_class is not supported")
	}
	if !emptyJSON(c.WorkerConfig) {
		return nil, errors.New("this pool only runs the commands its config names; worker_config is not supported")
	}
	n := 0
	switch c.Operation {
	case OpStartWorker:
		n = 1
		if c.Count != nil {
			n = *c.Count
		}
	case OpStopWorker:
	default:
		return nil, fmt.Errorf("%q is not an operation", c.Operation)
	}
	return []string{c.Queues + "=" + strconv.Itoa(n)}, nil
}

// emptyJSON reports whether raw is absent or an empty value: null, "",
// {} or [].
func emptyJSON(raw json.RawMessage) bool {
	switch string(bytes.Join(bytes.Fields(raw), nil)) {
	case "", "null", `""`, "{}", "[]":
		return true
	}
	return false
}

// replyAddress reads the id and reply_to of a message that did not decode
// as a Command, so that its sender still hears why; ok is false when
// there is no usable address.
func replyAddress(raw []byte) (id, replyTo string, ok bool) {
	if len(raw) > MaxCommandSize {
		return "", "", false
	}
	var a struct {
		ID      string `json:"id"`
		ReplyTo string `json:"reply_to"`
	}
	if json.Unmarshal(raw, &a) != nil || a.ID == "" || len(a.ID) > MaxCommandID || queue.ValidateReplyTo(a.ReplyTo) != nil {
		return "", "", false
	}
	return a.ID, a.ReplyTo, true
}
