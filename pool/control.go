package pool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// stopReplyGrace is how long a remote stop waits before it begins, so
// that its reply is on its way before the master (and with it the
// listener that answers) goes away: a pool with no busy worker stops at
// once.
const stopReplyGrace = 300 * time.Millisecond

// errMasterGone answers a remote command the master can no longer serve.
var errMasterGone = errors.New("the master has stopped")

// Remote carries out fleet control verbs on a master; it has the method
// set of fleet.Executor (package pool does not import fleet). Each method
// runs its work on the master's event loop and returns once the change is
// applied and published in the state file, so a caller may read the state
// right after. Safe from any goroutine.
type Remote struct{ m *Master }

// Remote returns the master's executor of control messages.
func (m *Master) Remote() *Remote { return &Remote{m: m} }

// ConfigResult is what a remote config, reload or autoscale answers.
type ConfigResult struct {
	Spec   string       `json:"spec"` // the spec in force after the change
	Groups []GroupState `json:"groups"`
	// File is the file the change was written to ("" for reload).
	File string `json:"file,omitempty"`
}

// StopResult is what a remote stop answers.
type StopResult struct {
	Stopping string `json:"stopping"` // graceful
	Workers  int    `json:"workers"`  // workers asked to finish their job and exit
}

// call runs fn on the event loop and waits for its result.
func (r *Remote) call(ctx context.Context, fn func() (any, error)) (any, error) {
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	select {
	case r.m.calls <- func() { v, err := fn(); ch <- result{v, err} }:
	case <-r.m.done:
		return nil, errMasterGone
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case x := <-ch:
		return x.v, x.err
	case <-r.m.done:
		select {
		case x := <-ch:
			return x.v, x.err
		default:
			return nil, errMasterGone
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// publish applies what fn changed at once (the loop would do it after fn
// returns, but the answer must describe the applied state).
func (m *Master) publish() {
	m.reconcile()
	m.flushState()
}

// RemoteControl reports whether the configuration in force (as of the
// last load) takes mutating verbs.
func (r *Remote) RemoteControl() bool { return r.m.remoteControl.Load() }

// Status answers the master's current state, as the state file has it.
func (r *Remote) Status(ctx context.Context) (any, error) {
	return r.call(ctx, func() (any, error) { return r.m.snapshot(), nil })
}

// Config merges spec words (foo=4, bar=0 removes bar) into the pool's
// counts exactly as the shell's config does, writes them where the master
// reads them, and reloads. A master that runs from the user's own config
// file without an overrides file refuses: that file is never rewritten.
func (r *Remote) Config(ctx context.Context, words []string) (any, error) {
	if len(words) == 0 {
		return nil, errors.New("config: give spec words, e.g. foo=4 bar=0")
	}
	upd, err := spec.ParseArgs(words)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return r.call(ctx, func() (any, error) { return r.m.remoteConfig(upd) })
}

func (m *Master) remoteConfig(upd spec.Spec) (any, error) {
	if m.stopping != notStopping {
		return nil, errors.New("config: the pool is stopping")
	}
	var file string
	var data, old []byte
	var next *spec.Config
	switch {
	case m.opts.Overrides != "":
		file = m.opts.Overrides
		cur := m.overrides
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			old = b
			if cur, err = spec.Parse(strings.TrimSpace(string(b))); err != nil {
				return nil, fmt.Errorf("config: overrides %s: %w", file, err)
			}
		case errors.Is(err, os.ErrNotExist):
		default:
			return nil, fmt.Errorf("config: %w", err)
		}
		over := spec.MergeOverrides(cur, upd)
		if next, err = spec.LoadConfig(m.opts.ConfigPath, m.opts.Env); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		next.Workers = next.Workers.Merge(over)
		data = []byte(over.UpdateString() + "\n")
	case m.opts.ConfigPath == m.opts.Paths.Config:
		file = m.opts.ConfigPath
		var err error
		if old, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if next, err = spec.ParseConfig(old, file, m.opts.Env); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		next.Workers = next.Workers.Merge(upd)
		if data, err = next.Marshal(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	default:
		return nil, fmt.Errorf("config: the master reads %s, the user's own config file, which it never rewrites: start it with --overrides FILE to change counts remotely", m.opts.ConfigPath)
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// An autoscaled queue list given a count is pinned at it; one removed
	// loses its pin (as the shell's config does).
	pins, err := poolfs.ReadAutoscaleOff(m.opts.Paths.AutoscaleOff)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	oldPins := maps.Clone(pins)
	changed := false
	for _, e := range upd {
		switch {
		case e.Count == 0 && pins[e.Queues]:
			delete(pins, e.Queues)
			changed = true
		case e.Count > 0 && next.Groups[e.Queues].Autoscale != nil && !pins[e.Queues]:
			pins[e.Queues] = true
			changed = true
		}
	}
	if err := poolfs.WriteFileAtomic(file, data); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if changed {
		if err := poolfs.WriteAutoscaleOff(m.opts.Paths.AutoscaleOff, pins); err != nil {
			m.restoreFile(file, old)
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	m.log.Printf("fleet config %s: writing %s and reloading", upd.UpdateString(), file)
	m.reload()
	if m.lastError != "" {
		// Put back what was there, so a refused change changes nothing.
		m.restoreFile(file, old)
		if changed {
			_ = poolfs.WriteAutoscaleOff(m.opts.Paths.AutoscaleOff, oldPins)
		}
		return nil, fmt.Errorf("config: %s", m.lastError)
	}
	m.publish()
	return m.configResult(file), nil
}

// restoreFile puts old back into file (removes it when old is nil).
func (m *Master) restoreFile(file string, old []byte) {
	var err error
	if old == nil {
		err = os.Remove(file)
	} else {
		err = poolfs.WriteFileAtomic(file, old)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Printf("cannot restore %s: %v", file, err)
	}
}

func (m *Master) configResult(file string) *ConfigResult {
	return &ConfigResult{Spec: m.cfg.Workers.String(), Groups: m.snapshot().Groups, File: file}
}

// Reload does what HUP does: re-read the configuration and reopen the
// log. A configuration that does not load is an error (the master keeps
// the one in force).
func (r *Remote) Reload(ctx context.Context) (any, error) {
	return r.call(ctx, func() (any, error) {
		m := r.m
		if m.stopping != notStopping {
			return nil, errors.New("reload: the pool is stopping")
		}
		m.handleSignal(syscall.SIGHUP)
		if m.lastError != "" {
			return nil, fmt.Errorf("reload: %s", m.lastError)
		}
		m.publish()
		return m.configResult(""), nil
	})
}

// Stop begins a graceful stop (QUIT) once the answer is on its way.
func (r *Remote) Stop(ctx context.Context) (any, error) {
	return r.call(ctx, func() (any, error) {
		m := r.m
		res := &StopResult{Stopping: "graceful", Workers: len(m.workers)}
		if m.stopping != notStopping {
			return res, nil
		}
		m.log.Printf("fleet stop: graceful shutdown in %s", stopReplyGrace)
		time.AfterFunc(stopReplyGrace, func() {
			m.post(func() { m.beginStop(gracefulStop, "fleet stop") })
		})
		return res, nil
	})
}

// Autoscale switches autoscaling on or off (pinned at the configured
// count) for the named autoscaled queue lists, all of them when none is
// named, as the shell's autoscale on|off does.
func (r *Remote) Autoscale(ctx context.Context, on bool, queues []string) (any, error) {
	return r.call(ctx, func() (any, error) {
		m := r.m
		if m.stopping != notStopping {
			return nil, errors.New("autoscale: the pool is stopping")
		}
		lists, err := m.resolveGroups(queues, func(g *group) bool { return g.autoscale.settings != nil })
		if err != nil {
			return nil, fmt.Errorf("autoscale: %w", err)
		}
		if len(lists) == 0 {
			return nil, fmt.Errorf("autoscale: pool %s has no autoscaled queue lists", m.opts.Paths.Name)
		}
		pins, err := poolfs.ReadAutoscaleOff(m.opts.Paths.AutoscaleOff)
		if err != nil {
			return nil, fmt.Errorf("autoscale: %w", err)
		}
		for _, q := range lists {
			if on {
				delete(pins, q)
			} else {
				pins[q] = true
			}
		}
		if err := poolfs.WriteAutoscaleOff(m.opts.Paths.AutoscaleOff, pins); err != nil {
			return nil, fmt.Errorf("autoscale: %w", err)
		}
		mode := map[bool]string{true: "on", false: "off"}[on]
		m.log.Printf("fleet autoscale %s %s: reloading", mode, strings.Join(lists, " "))
		m.reload()
		if m.lastError != "" {
			return nil, fmt.Errorf("autoscale: %s", m.lastError)
		}
		m.publish()
		return m.configResult(""), nil
	})
}

// resolveGroups maps queue list names to the lists in force, all of them
// when names is empty; an unknown one is an error naming it.
func (m *Master) resolveGroups(names []string, pick func(*group) bool) ([]string, error) {
	var lists []string
	for _, q := range m.order {
		if pick == nil || pick(m.groups[q]) {
			lists = append(lists, q)
		}
	}
	if len(names) == 0 {
		return lists, nil
	}
	known := map[string]bool{}
	for _, q := range lists {
		known[q] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		q := canonicalQueues(n)
		if !known[q] {
			return nil, fmt.Errorf("%q is not a queue list of pool %s (queue lists: %s)", n, m.opts.Paths.Name, strings.Join(lists, " "))
		}
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	return out, nil
}

// canonicalQueues is name as spec strings spell a queue list ("b, a"
// becomes "b,a"); a name that is no queue list stays as it is.
func canonicalQueues(name string) string {
	s, err := spec.Parse(name + "=1")
	if err != nil || len(s) != 1 {
		return name
	}
	return s[0].Queues
}
