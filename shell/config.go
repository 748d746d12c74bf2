package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// configSync is the configuration a session manages and where it stands
// against the config file the master reads.
type configSync struct {
	cfg *spec.Config
	// userFile is the config file given with -c: the source of truth,
	// re-read by reload and start. overrides are the worker counts set
	// from the shell (SPEC arguments, config), kept on top of it; counts
	// of 0 (a queue list removed) included.
	userFile  string
	overrides spec.Spec
	// overridesPath, when set, is the overrides file of a master that
	// runs from userFile itself (started by this shell, or found so at
	// attach): the shell's changes go there, and a HUP re-reads userFile.
	overridesPath string
	configPath    string // the file the master reads
	// brokenConfig is why the attached pool's config file did not load:
	// the session then shows only what the master ran, and cannot
	// restart the pool from it.
	brokenConfig error
	cfgStamp     time.Time // its modification time when last read or written
	// pins are the autoscaled queue lists pinned at their configured
	// count (Paths.AutoscaleOff) as this shell knows them: nil when it
	// does not (an attached pool, until read), empty for a pool this
	// shell starts afresh.
	pins map[string]bool
}

// stampConfig records the config file's modification time.
func (c *configSync) stampConfig() {
	if fi, err := os.Stat(c.configPath); err == nil {
		c.cfgStamp = fi.ModTime()
	}
}

// refreshConfig re-reads the config file when someone else (another
// shell, an editor) changed it since this shell last wrote or read it, so
// that merges start from what the master is told to run.
func (s *Session) refreshConfig() {
	s.syncOverrides()
	s.syncPins()
	fi, err := os.Stat(s.configPath)
	if err != nil || !fi.ModTime().After(s.cfgStamp) {
		return
	}
	if _, ok := s.pool().MasterPID(); !ok && s.configPath == s.paths.Config {
		return // our own file of a stopped pool: the shell's copy rules
	}
	if s.ownsUserFile() {
		if s.rebase() == nil { // the user edited FILE: it, under our overrides
			s.cfgStamp = fi.ModTime()
		}
		return
	}
	cfg, err := spec.LoadConfig(s.configPath, s.opts.Env)
	if err != nil {
		return
	}
	s.cfg = cfg
	s.cfgStamp = fi.ModTime()
}

// ownsUserFile reports whether the master runs from the user's -c FILE
// with the shell's changes in an overrides file: then FILE stays the
// user's and a HUP re-reads it.
func (s *Session) ownsUserFile() bool {
	return s.overridesPath != "" && s.userFile != "" && s.configPath == s.userFile
}

// syncOverrides takes the overrides from the overrides file when another
// shell attached to the pool changed them, so that this shell's next
// change builds on them instead of undoing them.
func (s *Session) syncOverrides() {
	if !s.ownsUserFile() {
		return
	}
	b, err := os.ReadFile(s.overridesPath)
	if err != nil {
		return
	}
	text := strings.TrimSpace(string(b))
	if text == s.overrides.UpdateString() {
		return
	}
	o, err := spec.Parse(text)
	if err != nil {
		return
	}
	s.overrides = o
	_ = s.rebase()
}

// writeOverrides writes the shell's overrides for a master that runs from
// the user's file.
func (s *Session) writeOverrides() error {
	if err := s.paths.Ensure(); err != nil {
		return err
	}
	return poolfs.WriteFileAtomic(s.overridesPath, []byte(s.overrides.UpdateString()+"\n"))
}

// writeConfig writes the shell's configuration to the master's config
// file; for a master that runs from the user's file, only the overrides.
func (s *Session) writeConfig() error {
	if s.ownsUserFile() {
		if err := s.writeOverrides(); err != nil {
			return err
		}
		return s.writeStartPins()
	}
	if s.foreignConfig() {
		return fmt.Errorf("the master reads %s, a config file poolctl did not write (it may hold comments and environment sections), so the shell does not rewrite it: edit it and use reload", s.configPath)
	}
	data, err := s.cfg.Marshal()
	if err != nil {
		return err
	}
	if s.configPath == s.paths.Config {
		if err := s.paths.Ensure(); err != nil {
			return err
		}
	}
	if err := poolfs.WriteFileAtomic(s.configPath, data); err != nil {
		return err
	}
	s.stampConfig()
	return s.writeStartPins()
}

// foreignConfig reports whether the master reads a config file other
// than the pool's own copy or this shell's -c FILE (a master started by
// hand with -c FILE).
func (s *Session) foreignConfig() bool {
	return s.configPath != s.paths.Config && !s.ownsUserFile()
}

// reload writes the config file and sends SIGHUP to the master.
func (s *Session) reload() (int, error) {
	pid, err := s.requireMaster()
	if err != nil {
		return 0, err
	}
	if s.foreignConfig() {
		// Someone else's file: re-read it, never rewrite it.
		cfg, err := spec.LoadConfig(s.configPath, s.opts.Env)
		if err != nil {
			return 0, err
		}
		s.cfg = cfg
		s.stampConfig()
	} else {
		if err := s.rebase(); err != nil {
			return 0, err
		}
		if err := s.writeConfig(); err != nil {
			return 0, err
		}
	}
	s.expect(s.cfg.Workers.String())
	s.hupAt = time.Now()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return 0, fmt.Errorf("signal master %d: %w", pid, err)
	}
	return pid, nil
}

// applyTimeout bounds how long config and reload wait for the master to
// publish the state that includes the change.
var applyTimeout = 3 * time.Second

// awaitApplied waits, after a reload, until the master publishes a state
// whose spec is the one asked for (the master spawns the new workers
// before it publishes), so that the status that follows is not the table
// from before the change. A master that has not applied it within
// applyTimeout is reported, not an error: wait waits longer. A reload the
// master rejected is an error.
func (s *Session) awaitApplied(ctx context.Context, pid int) error {
	deadline := time.NewTimer(applyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval / 5)
	defer tick.Stop()
	for {
		if st, err := poolfs.ReadState(s.paths.State); err == nil && st.PID == pid {
			if st.Spec == s.expectSpec {
				s.expecting = false
				return nil
			}
			if st.Error != "" && st.UpdatedAt.After(s.hupAt) {
				return fmt.Errorf("the master rejected the configuration: %s", st.Error)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			fmt.Fprintf(s.info, "the master has not applied it yet (after %v); wait waits for it\n", applyTimeout)
			return nil
		case <-tick.C:
		}
	}
}

// rebase re-reads the -c file, the source of truth, and puts the shell's
// overrides on top of it, so that edits of the file reach the master on
// reload and start. A file that no longer loads changes nothing.
func (s *Session) rebase() error {
	if s.userFile == "" || (s.opts.Attach && s.overridesPath == "") {
		return nil
	}
	c, err := spec.LoadConfig(s.userFile, s.opts.Env)
	if err != nil {
		return fmt.Errorf("re-read %s: %w", s.userFile, err)
	}
	c.Workers = c.Workers.Merge(s.overrides)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s with the shell's overrides: %w", s.userFile, err)
	}
	s.cfg = c
	return nil
}

func cmdConfig(ctx context.Context, s *Session, args []string) error {
	s.refreshConfig()
	save := false
	var specArgs []string
	for _, a := range args {
		if a == "--save" {
			save = true
			continue
		}
		specArgs = append(specArgs, a)
	}
	args = specArgs
	if save {
		if err := s.checkSave(); err != nil {
			return err
		}
	}
	if len(args) == 0 {
		if save {
			return s.saveConfig(ctx)
		}
		fmt.Fprintln(s.out, s.cfg.Workers.Describe())
		return nil
	}
	upd, err := spec.ParseArgs(args)
	if err != nil {
		return err
	}
	if _, running := s.pool().MasterPID(); running && s.foreignConfig() {
		return fmt.Errorf("config: the master reads %s, a config file poolctl did not write (it may hold comments and environment sections), so the shell does not change it: edit it and use reload", s.configPath)
	}
	next := *s.cfg
	next.Workers = s.cfg.Workers.Merge(upd)
	if err := next.Validate(); err != nil {
		return err
	}
	// An autoscaled queue list given a count is pinned at it (autoscale
	// off for it) until autoscale on; one removed loses its pin. The
	// master reads the pins at the reload below.
	pins, err := s.pinsOf()
	if err != nil {
		return err
	}
	pin, unpin := pinChanges(&next, upd, pins)
	restorePins := func() error { return nil }
	if len(pin)+len(unpin) > 0 {
		if restorePins, err = s.changePins(func(p map[string]bool) {
			for _, e := range pin {
				p[e.Queues] = true
			}
			for _, q := range unpin {
				delete(p, q)
			}
		}); err != nil {
			return err
		}
	}
	prev, prevOverrides := s.cfg, s.overrides
	s.cfg = &next
	if s.userFile != "" {
		s.overrides = spec.MergeOverrides(s.overrides, upd)
	}
	if _, ok := s.pool().MasterPID(); ok {
		pid, err := s.reload()
		if err != nil {
			s.cfg, s.overrides = prev, prevOverrides
			if rerr := restorePins(); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		fmt.Fprintf(s.info, "%s\nReloading master %d configuration\n", s.cfg.Workers.Describe(), pid)
		if err := s.awaitApplied(ctx, pid); err != nil {
			return err
		}
		if len(pin) > 0 {
			modes := map[string]string{}
			for _, e := range pin {
				modes[e.Queues] = poolfs.AutoscaleOff
			}
			if err := s.awaitModes(ctx, pid, modes); err != nil {
				return err
			}
		}
	} else {
		fmt.Fprintf(s.info, "%s\n", s.cfg.Workers.Describe())
	}
	// On standard error in a script (info), and in top's status line
	// when top's + and - run this.
	for _, e := range pin {
		fmt.Fprintf(s.info, "%s: autoscale off, pinned at %d; `autoscale on %s` to resume\n", e.Queues, e.Count, Quote(e.Queues))
	}
	if save {
		return s.saveConfig(ctx)
	}
	return nil
}

// checkSave says why config --save cannot write the user's file, if it
// cannot: there must be one (-c FILE), and it must lose nothing by being
// rewritten.
func (s *Session) checkSave() error {
	if s.userFile == "" {
		return fmt.Errorf("config --save: there is no config file to save to (start the shell with -c FILE)")
	}
	data, err := os.ReadFile(s.userFile)
	if err != nil {
		return fmt.Errorf("config --save: %w", err)
	}
	if ok, why := spec.SafeToRewrite(data); !ok {
		return fmt.Errorf("config --save: %s is not rewritten: %s; edit it by hand", s.userFile, why)
	}
	return nil
}

// saveConfig writes the configuration in force (the user's file with the
// overrides) into the user's file, keeping its mode, and clears the
// overrides.
func (s *Session) saveConfig(ctx context.Context) error {
	if err := s.rebase(); err != nil {
		return err
	}
	data, err := s.cfg.Marshal()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(s.userFile); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := poolfs.WriteFileAtomic(s.userFile, data); err != nil {
		return fmt.Errorf("config --save: %w", err)
	}
	if err := os.Chmod(s.userFile, mode); err != nil {
		return fmt.Errorf("config --save: %w", err)
	}
	s.overrides = nil
	if s.ownsUserFile() {
		if err := s.writeOverrides(); err != nil {
			return err
		}
		if _, ok := s.pool().MasterPID(); ok {
			pid, err := s.reload()
			if err != nil {
				return err
			}
			if err := s.awaitApplied(ctx, pid); err != nil {
				return err
			}
		}
	}
	s.stampConfig()
	fmt.Fprintf(s.info, "saved %s to %s\n", s.cfg.Workers.Describe(), s.userFile)
	return nil
}
