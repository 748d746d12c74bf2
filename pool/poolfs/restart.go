package poolfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// States of a rolling restart, as published in the state file.
const (
	RestartRunning = "running"
	RestartDone    = "done"
	RestartFailed  = "failed" // stopped early: the workers not yet replaced keep running
)

// RestartRequest is what a shell writes to Paths.RestartRequest before it
// sends SIGPWR to the master: replace the workers of Queues (every queue
// list when empty), Batch at a time, or all at once when Now is set.
type RestartRequest struct {
	// ID is chosen by the requester; the master publishes it with the
	// roll (State.Restart) or its refusal (State.RestartRefused), so the
	// requester knows which answer is its own.
	ID     string   `json:"id"`
	Queues []string `json:"queues,omitempty"`
	Batch  int      `json:"batch,omitempty"` // default 1
	Now    bool     `json:"now,omitempty"`   // restart!: stop all, start all
}

// RestartState is the state file's view of the last rolling restart.
type RestartState struct {
	ID     string   `json:"id,omitempty"`
	Reason string   `json:"reason"`           // "restart", "restart!" or "command changed" (a HUP)
	Queues []string `json:"queues,omitempty"` // the queue lists being replaced
	Batch  int      `json:"batch"`
	// Replaced counts the old workers stopped after their replacement
	// became ready; Total is Replaced plus the old workers still to go.
	Replaced  int       `json:"replaced"`
	Total     int       `json:"total"`
	State     string    `json:"state"` // RestartRunning, RestartDone or RestartFailed
	Error     string    `json:"error,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// RestartRefusal is a restart request the master did not carry out.
type RestartRefusal struct {
	ID    string    `json:"id,omitempty"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// errRestartPending is returned by WriteRestartRequest when a request
// is already waiting for the master.
var errRestartPending = errors.New("a restart request is already waiting for the master")

// WriteRestartRequest creates path holding r. It never replaces a
// request the master has not read yet (the file is linked into place,
// which fails when one exists), so two shells cannot lose each other's.
func WriteRestartRequest(path string, r RestartRequest) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode restart request: %w", err)
	}
	tmp := path + ".tmp." + r.ID
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write restart request: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", path, errRestartPending)
		}
		return fmt.Errorf("write restart request: %w", err)
	}
	return nil
}

// TakeRestartRequest reads and removes the request at path. A request
// that does not parse or is invalid is removed too; its error names the
// file and what is wrong, and id is whatever ID could be read.
func TakeRestartRequest(path string) (r RestartRequest, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("read restart request: %w", err)
	}
	_ = os.Remove(path)
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		// Keep the id, when there is one, so the requester hears of it.
		var loose struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(data, &loose)
		return RestartRequest{ID: loose.ID}, fmt.Errorf("%s: malformed restart request: %v", path, err)
	}
	if r.Batch == 0 {
		r.Batch = 1
	}
	if r.Batch < 1 {
		return r, fmt.Errorf("%s: batch must be at least 1, got %d", path, r.Batch)
	}
	for i, q := range r.Queues {
		names := strings.Split(q, ",")
		for j, n := range names {
			names[j] = strings.TrimSpace(n)
			if names[j] == "" {
				return r, fmt.Errorf("%s: queues[%d] %q: empty queue name", path, i, q)
			}
		}
		r.Queues[i] = strings.Join(names, ",")
	}
	return r, nil
}
