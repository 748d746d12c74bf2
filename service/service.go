// Package service renders the files that run a poolctl master under a
// service manager: a systemd unit (Systemd) and a supervisord program
// section (Supervisord). Both are pure functions of a Spec, so what
// `poolctl export` prints is tested byte for byte.
package service

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Instance is the pool name in a systemd template (poolctl@.service): the
// instance name, %i. A Spec.Config of a template holds it where the
// instance's config file name goes.
const Instance = "%i"

// stopMargin is added to twice term_timeout for the master's own exit:
// its last reaps, the state file, a private Redis it stops last.
const stopMargin = 10 * time.Second

// Spec is one pool run as a service.
type Spec struct {
	// Name is the pool name (poolctl master --name); ignored by a
	// template, whose instance names the pool.
	Name string
	// Binary is the absolute path of the poolctl executable.
	Binary string
	// Config is the absolute path of the config file; in a template, a
	// pattern in which Instance stands for the pool name.
	Config string
	// WorkDir is the absolute working directory (the config's directory).
	WorkDir string
	// User runs the master when set; "" leaves it to the service manager
	// (root for a system unit).
	User string
	// TermTimeout is the config's term_timeout, from which the stop
	// timeout is derived (StopTimeout).
	TermTimeout time.Duration
	// RuntimeDir is the POOLCTL_RUNTIME_DIR the master runs with: the
	// directory a shell looks in to attach (absolute; in a template it
	// may contain Instance). Under /run and one level deep, a systemd
	// unit has systemd create it (RuntimeDirectory=).
	RuntimeDir string
	// Template renders systemd's poolctl@.service, where the instance
	// name is the pool name.
	Template bool
}

// StopTimeout is how long a service manager should wait for a graceful
// stop before it kills the master: on QUIT the master sends QUIT to its
// workers and KILL to those left after term_timeout, while a worker being
// recycled climbs QUIT, TERM after term_timeout, KILL after as long again.
// Twice term_timeout plus a margin covers both, so the manager's own
// SIGKILL never cuts a job short that poolctl would have let finish.
func StopTimeout(termTimeout time.Duration) time.Duration {
	return 2*termTimeout + stopMargin
}

// name is the pool name as rendered: the instance specifier in a template.
func (s Spec) name() string {
	if s.Template {
		return Instance
	}
	return s.Name
}

// unitName is the name of the unit or program: poolctl-NAME, or
// poolctl@ for a template.
func (s Spec) unitName() string {
	if s.Template {
		return "poolctl@"
	}
	return "poolctl-" + s.Name
}

// overrides is the overrides file in the pool's runtime directory, where
// an attached shell's `config` keeps its worker counts (poolfs.Paths).
func (s Spec) overrides() string {
	return s.RuntimeDir + "/" + s.name() + "/overrides.spec"
}

// argv is the master's command line.
func (s Spec) argv() []string {
	return []string{s.Binary, "master", "-c", s.Config, "--name", s.name(), "--overrides", s.overrides()}
}

// attachHint is the command that attaches a shell to the pool.
func (s Spec) attachHint() string {
	name := s.name()
	if s.Template {
		name = "NAME"
	}
	dir := strings.ReplaceAll(s.RuntimeDir, Instance, name)
	cmd := "POOLCTL_RUNTIME_DIR=" + shellQuote(dir) + " poolctl attach " + name
	if s.User != "" {
		// env, not sudo's own VAR=value, which sudoers may refuse.
		cmd = "sudo -u " + s.User + " env " + cmd
	}
	return cmd
}

var (
	// userName follows useradd's default NAME_REGEX (with systemd's
	// 31-character limit); a numeric uid is accepted too.
	userName = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,30}|[0-9]{1,10})$`)
	poolName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Validate checks what a service manager could not run or a reader could
// not trust: relative paths, control characters, a user name that is not
// one. The error names the field and the value.
func (s Spec) Validate() error {
	if !s.Template && (!poolName.MatchString(s.Name) || s.Name == "." || s.Name == "..") {
		return fmt.Errorf("invalid pool name %q: use 1-64 letters, digits, '_', '-' or '.'", s.Name)
	}
	for _, f := range []struct{ what, path string }{
		{"binary", s.Binary}, {"config", s.Config}, {"working directory", s.WorkDir}, {"runtime directory", s.RuntimeDir},
	} {
		if !filepath.IsAbs(f.path) {
			return fmt.Errorf("%s %q: must be an absolute path", f.what, f.path)
		}
		if i := strings.IndexFunc(f.path, isControl); i >= 0 {
			return fmt.Errorf("%s %q: control character at byte %d cannot be written in a unit file", f.what, f.path, i)
		}
	}
	if s.Template && !strings.Contains(s.Config, Instance) {
		return fmt.Errorf("config pattern %q: a template needs %s where the pool name goes, e.g. /etc/poolctl/%s.yml", s.Config, Instance, Instance)
	}
	if s.User != "" && !userName.MatchString(s.User) {
		return fmt.Errorf("invalid user %q: want a login name (lower-case letters, digits, '_', '-', starting with a letter or '_', at most 31 characters) or a numeric uid", s.User)
	}
	if s.TermTimeout < 0 {
		return fmt.Errorf("term_timeout %s: must not be negative", s.TermTimeout)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// seconds formats d as whole seconds, rounded up, for both managers.
func seconds(d time.Duration) string {
	return fmt.Sprint(int64((d + time.Second - 1) / time.Second))
}

// shellQuote quotes s for a POSIX shell when it needs it (for the hints
// in comments, which people paste).
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '-' || r == '_' || r == '.' || r == '%' || r == '=' || r == ':' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
