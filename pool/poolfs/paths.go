package poolfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Paths names the files of one pool. The runtime directory is the whole
// interface between a shell and its master: a second shell can attach to a
// pool by name because everything it needs is here.
type Paths struct {
	Name   string // pool name
	Dir    string // runtime directory, mode 0700
	Config string // config file the master reads (and the shell writes)
	Pid    string // master pid file
	State  string // JSON state, replaced atomically on every change
	Log    string // default pool log
	Lock   string // flock held by the running master
	// StartLock is flocked by a shell while it starts the pool's master,
	// so two shells starting one pool at once do not both write its
	// configuration.
	StartLock string
	// Overrides holds a shell's worker counts on top of the user's config
	// file (a spec string), for a master started with --overrides.
	Overrides string
	Redis     string // unix socket of an embedded redis-server
	// RedisURL holds the full Redis URL in force, password included, for
	// local clients (the shell); mode 0600 in a 0700 directory. The state
	// file carries only the redacted form.
	RedisURL string
	// Sample holds the master's latest cockpit sample with a short
	// history (stats.Sample, depth history included), replaced atomically every sample interval.
	Sample string
	// AutoscaleOff lists the autoscaled queue lists a shell pinned to
	// their configured count (`config Q=N`, `autoscale off Q`), one per
	// line; the master reads it at every load.
	AutoscaleOff string
	// RestartRequest is a shell's rolling restart request
	// (RestartRequest, JSON), read and removed by the master on SIGPWR.
	RestartRequest string
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ValidatePoolName reports whether name can name a pool (it becomes a
// directory name).
func ValidatePoolName(name string) error {
	if !validName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("invalid pool name %q: use 1-64 letters, digits, '_', '-' or '.'", name)
	}
	return nil
}

// DefaultPoolName is the base name of the current directory, made safe for
// use as a pool name.
func DefaultPoolName() string {
	wd, err := os.Getwd()
	if err != nil {
		return "default"
	}
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(filepath.Base(wd), "_")
	if ValidatePoolName(name) != nil {
		return "default"
	}
	return name
}

// BaseDir is the directory holding every pool's runtime directory for this
// user: $POOLCTL_RUNTIME_DIR, else $XDG_RUNTIME_DIR/poolctl, else
// $TMPDIR/poolctl-UID.
func BaseDir() string {
	if d := os.Getenv("POOLCTL_RUNTIME_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "poolctl")
	}
	return filepath.Join(os.TempDir(), "poolctl-"+strconv.Itoa(os.Getuid()))
}

// PathsFor returns the paths of the named pool under base.
func PathsFor(base, name string) Paths {
	dir := filepath.Join(base, name)
	return Paths{
		Name:   name,
		Dir:    dir,
		Config: filepath.Join(dir, "pool.yml"),
		Pid:    filepath.Join(dir, "master.pid"),
		State:  filepath.Join(dir, "state.json"),
		Log:    filepath.Join(dir, "pool.log"),
		Lock:   filepath.Join(dir, "master.lock"),
		Redis:  filepath.Join(dir, "redis.sock"),

		RedisURL:  filepath.Join(dir, "redis.url"),
		Overrides: filepath.Join(dir, "overrides.spec"),
		StartLock: filepath.Join(dir, "start.lock"),
		Sample:    filepath.Join(dir, "sample.json"),

		AutoscaleOff:   filepath.Join(dir, "autoscale.off"),
		RestartRequest: filepath.Join(dir, "restart.request"),
	}
}

// Ensure creates the runtime directory (and its parent) with mode 0700 and
// refuses a directory owned by another user or open to others.
func (p Paths) Ensure() error {
	for _, d := range []string{filepath.Dir(p.Dir), p.Dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create runtime directory: %w", err)
		}
		if err := checkPrivateDir(d); err != nil {
			return err
		}
	}
	return nil
}

func checkPrivateDir(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("runtime directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("runtime directory %s is not a directory", d)
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("runtime directory %s belongs to uid %d, not to you (uid %d)", d, uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("runtime directory %s is open to other users and cannot be fixed: %w", d, err)
		}
	}
	return nil
}

// ListPools returns the names of pools under base that have a state file.
func ListPools(base string) ([]string, error) {
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && ValidatePoolName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ReadAutoscaleOff reads the set of pinned queue lists (none when the
// file does not exist).
func ReadAutoscaleOff(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	off := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			off[line] = true
		}
	}
	return off, nil
}

// WriteAutoscaleOff atomically replaces the set of pinned queue lists.
func WriteAutoscaleOff(path string, off map[string]bool) error {
	lists := make([]string, 0, len(off))
	for q, ok := range off {
		if ok {
			lists = append(lists, q)
		}
	}
	sort.Strings(lists)
	var b strings.Builder
	for _, q := range lists {
		b.WriteString(q + "\n")
	}
	return WriteFileAtomic(path, []byte(b.String()))
}
