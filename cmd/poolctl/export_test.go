package main

// End-to-end tests of `poolctl export`: the unit passes systemd-analyze
// verify, the supervisord section has the keys supervisord reads, bad
// input changes nothing and exits 2, and a master started exactly as the
// unit starts it notifies systemd and can be attached with the documented
// command.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
)

// demoConfig is examples/demo.yml, relative to this package.
var demoConfig = filepath.Join("..", "..", "examples", "demo.yml")

// verifyUnit runs systemd-analyze verify on unit (a path) and returns
// its complaints, the lines about units outside our control (After= on a
// redis-server.service this host lacks) left out.
func verifyUnit(t *testing.T, unit string) (complaints string, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); cannot verify the exported unit")
	}
	cmd := exec.Command(bin, "verify", "--man=no", unit)
	cmd.Dir = filepath.Dir(unit)
	out, err := cmd.CombinedOutput()
	var kept []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "redis-server.service") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n"), err == nil && len(kept) == 0
}

// withBinary returns unit with its ExecStart binary replaced: a control
// that shows verify really checks what we wrote.
func withBinary(t *testing.T, unit, bin string) string {
	t.Helper()
	i := strings.Index(unit, "\nExecStart=")
	if i < 0 {
		t.Fatalf("no ExecStart= in\n%s", unit)
	}
	i += len("\nExecStart=")
	j := strings.IndexAny(unit[i:], " \n")
	return unit[:i] + bin + unit[i+j:]
}

func TestExportSystemdVerifies(t *testing.T) {
	e := newShellEnv(t)
	r := e.run("", "export", "systemd", "-c", demoConfig, "--name", "demo")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	keys := iniKeys(t, r.stdout)["Service"]
	abs, _ := filepath.Abs(demoConfig)
	if want := shellBin + " master -c " + abs + " --name demo --overrides /run/poolctl-demo/demo/overrides.spec"; keys["ExecStart"] != want {
		t.Errorf("ExecStart=%s\nwant       %s", keys["ExecStart"], want)
	}
	if keys["TimeoutStopSec"] != "30" { // demo.yml: the default term_timeout, 10 s
		t.Errorf("TimeoutStopSec=%s, want 30", keys["TimeoutStopSec"])
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "demo.service")
	if err := os.WriteFile(unit, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := verifyUnit(t, unit); !ok {
		t.Errorf("systemd-analyze verify rejects the exported unit:\n%s\n--- unit:\n%s", out, r.stdout)
	}

	bad := filepath.Join(dir, "bad.service")
	if err := os.WriteFile(bad, []byte(withBinary(t, r.stdout, filepath.Join(dir, "missing"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := verifyUnit(t, bad); ok || !strings.Contains(out, "missing") {
		t.Errorf("control: verify accepts a unit whose binary is missing (output %q)", out)
	}
}

// Paths with spaces, '%' and '$' in the binary's and the config's paths:
// systemd finds the binary (verify checks it exists), so the quoting and
// escaping hold.
func TestExportSystemdVerifiesAwkwardPaths(t *testing.T) {
	e := newShellEnv(t)
	dir := filepath.Join(t.TempDir(), "my pools", "50% $HOME")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "poolctl")
	if err := os.Link(shellBin, bin); err != nil {
		t.Skipf("cannot link the binary into %s: %v", dir, err)
	}
	cfg := filepath.Join(dir, "it's demo.yml")
	data, err := os.ReadFile(demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(data, "term_timeout: 20s\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "export", "systemd", "-c", cfg, "--name", "odd", "--user", "poolctl")
	cmd.Env = e.env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	keys := iniKeys(t, string(out))["Service"]
	if !strings.HasPrefix(keys["ExecStart"], `"`) || !strings.Contains(keys["ExecStart"], "50%% $HOME/poolctl") || !strings.Contains(keys["ExecStart"], "50%% $$HOME/it's demo.yml") || keys["TimeoutStopSec"] != "50" || keys["User"] != "poolctl" {
		t.Errorf("ExecStart=%s TimeoutStopSec=%s User=%s", keys["ExecStart"], keys["TimeoutStopSec"], keys["User"])
	}
	unit := filepath.Join(t.TempDir(), "odd.service")
	if err := os.WriteFile(unit, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if complaints, ok := verifyUnit(t, unit); !ok {
		t.Errorf("systemd-analyze verify rejects the unit:\n%s\n--- unit:\n%s", complaints, out)
	}
}

// The template, instantiated as poolctl@demo.service, verifies; with a
// missing binary it does not (so verify did load the instance).
func TestExportSystemdTemplateVerifies(t *testing.T) {
	e := newShellEnv(t)
	confDir := t.TempDir()
	data, err := os.ReadFile(demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "demo.yml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "slow.yml"), append(data, "term_timeout: 1m\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("", "export", "systemd", "--template", "-c", filepath.Join(confDir, "%i.yml"))
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("export --template: exit %d\n%s", r.code, r.stderr)
	}
	keys := iniKeys(t, r.stdout)["Service"]
	want := shellBin + " master -c " + filepath.Join(confDir, "%i.yml") + " --name %i --overrides /run/poolctl-%i/%i/overrides.spec"
	if keys["ExecStart"] != want || keys["RuntimeDirectory"] != "poolctl-%i" || keys["Environment"] != "POOLCTL_RUNTIME_DIR=/run/poolctl-%i" {
		t.Errorf("ExecStart=%s (want %s)\nRuntimeDirectory=%s Environment=%s", keys["ExecStart"], want, keys["RuntimeDirectory"], keys["Environment"])
	}
	if keys["TimeoutStopSec"] != "130" { // the largest term_timeout of the matching files, 1 m
		t.Errorf("TimeoutStopSec=%s, want 130", keys["TimeoutStopSec"])
	}
	unitDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(unitDir, "poolctl@.service"), []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := verifyUnit(t, filepath.Join(unitDir, "poolctl@demo.service")); !ok {
		t.Errorf("systemd-analyze verify rejects poolctl@demo.service:\n%s\n--- unit:\n%s", out, r.stdout)
	}

	badDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(badDir, "poolctl@.service"), []byte(withBinary(t, r.stdout, filepath.Join(badDir, "missing"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, ok := verifyUnit(t, filepath.Join(badDir, "poolctl@demo.service")); ok || !strings.Contains(out, "missing") {
		t.Errorf("control: verify accepts an instance whose binary is missing (output %q)", out)
	}

	// No config matching yet: the default term_timeout, and a note on stderr.
	r = e.run("", "export", "systemd", "--template", "-c", filepath.Join(t.TempDir(), "%i.yml"))
	if r.code != 0 || !strings.Contains(r.stderr, "assumes term_timeout 10s") || iniKeys(t, r.stdout)["Service"]["TimeoutStopSec"] != "30" {
		t.Errorf("export --template with no config yet: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestExportSupervisord(t *testing.T) {
	e := newShellEnv(t)
	r := e.run("", "export", "supervisord", "-c", demoConfig, "--user", "www-data")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	sections := iniKeys(t, r.stdout)
	if len(sections) != 1 {
		t.Fatalf("want one section, got %d:\n%s", len(sections), r.stdout)
	}
	keys, ok := sections["program:poolctl-demo"]
	if !ok {
		t.Fatalf("no [program:poolctl-demo] section:\n%s", r.stdout)
	}
	abs, _ := filepath.Abs(demoConfig)
	rt := filepath.Join(os.TempDir(), "poolctl-demo")
	want := map[string]string{
		"command":         shellBin + " master -c " + abs + " --name demo --overrides " + rt + "/demo/overrides.spec",
		"directory":       filepath.Dir(abs),
		"user":            "www-data",
		"environment":     `POOLCTL_RUNTIME_DIR="` + rt + `"`,
		"stopsignal":      "QUIT",
		"stopasgroup":     "true",
		"killasgroup":     "true",
		"stopwaitsecs":    "30",
		"autorestart":     "unexpected",
		"startsecs":       "5",
		"redirect_stderr": "true",
	}
	for k, v := range want {
		if keys[k] != v {
			t.Errorf("%s=%q, want %q", k, keys[k], v)
		}
	}
}

// Bad input: a clear message naming the problem, nothing on stdout, exit 2.
func TestExportBadInput(t *testing.T) {
	e := newShellEnv(t)
	broken := filepath.Join(t.TempDir(), "broken.yml")
	if err := os.WriteFile(broken, []byte("workers:\n  foo: two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nope.yml")
	oddName := filepath.Join(t.TempDir(), "my pool.yml")
	if err := os.WriteFile(oddName, []byte("workers:\n  foo: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"export"}, "export takes one format, systemd or supervisord"},
		{[]string{"export", "upstart", "-c", demoConfig}, `export takes one format, systemd or supervisord (got "upstart")`},
		{[]string{"export", "systemd"}, "export needs -c FILE"},
		{[]string{"export", "systemd", "-c", missing}, "-c " + missing + ": spec: load config: open " + missing + ": no such file or directory"},
		{[]string{"export", "supervisord", "-c", broken}, "-c " + broken + ": " + broken + ":2:"},
		{[]string{"export", "systemd", "-c", demoConfig, "--name", "my pool"}, `--name: invalid pool name "my pool"`},
		{[]string{"export", "systemd", "-c", demoConfig, "--name", ".."}, `--name: invalid pool name ".."`},
		{[]string{"export", "systemd", "-c", demoConfig, "--user", "Bad User"}, `invalid user "Bad User"`},
		{[]string{"export", "systemd", "-c", demoConfig, "--user", "x\ny"}, `invalid user "x\ny"`},
		{[]string{"export", "supervisord", "--template", "-c", demoConfig}, "supervisord has no templates"},
		{[]string{"export", "systemd", "--template", "-c", demoConfig}, "a template's config is a pattern with %i"},
		{[]string{"export", "systemd", "--template", "--name", "x"}, "--name with --template"},
		{[]string{"export", "systemd", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"export", "systemd", "-c", oddName}, `no --name, and the config file's name makes none: invalid pool name "my pool"`},
	} {
		r := e.run("", tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
}

// A master started the way the exported unit starts it (its ExecStart,
// Environment= and WorkingDirectory=, NOTIFY_SOCKET as systemd sets it)
// tells the socket READY=1; `poolctl attach NAME` with the runtime
// directory the unit's comment gives attaches (and without it does not),
// changes a count live, which the master announces with RELOADING=1 and
// READY=1; QUIT, systemd's stop signal, brings STOPPING=1 and exit 0
// within TimeoutStopSec.
func TestExportedUnitRunsAndAttaches(t *testing.T) {
	redis := redistest.Start(t)
	e := newShellEnv(t)
	name := "svcexport"
	e.reap(name)
	cfg := filepath.Join(t.TempDir(), name+".yml")
	data := "redis: " + redis.URL() + "\nworkers:\n  demo: 2\ncommand: [\"sleep\", \"1000\"]\nstart_secs: 200ms\nterm_timeout: 3s\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run("", "export", "systemd", "-c", cfg, "--runtime-dir", e.runtime)
	if r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	svc := iniKeys(t, r.stdout)["Service"]
	if strings.ContainsAny(svc["ExecStart"]+svc["Environment"], `"'\%$`) {
		t.Fatalf("this test splits on blanks only, but the unit quotes or escapes: %s", svc["ExecStart"])
	}
	argv := strings.Fields(svc["ExecStart"])
	if argv[0] != shellBin {
		t.Fatalf("ExecStart runs %s, not the binary that exported it (%s)", argv[0], shellBin)
	}
	envKey, envVal, _ := strings.Cut(svc["Environment"], "=")
	hint := attachHint(t, r.stdout)

	ns := testutil.ListenNotify(t)
	var env []string
	for _, kv := range e.env {
		if !strings.HasPrefix(kv, "POOLCTL_RUNTIME_DIR=") {
			env = append(env, kv)
		}
	}
	master := exec.Command(argv[0], argv[1:]...)
	master.Env = append(env, envKey+"="+envVal, "NOTIFY_SOCKET="+ns.Path)
	master.Dir = svc["WorkingDirectory"]
	master.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{}) // closed once the master is reaped
	go func() { waitErr = master.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = master.Process.Kill()
			<-exited
		}
	})
	waitFor(t, 15*time.Second, "READY=1 from the master", func() bool { return ns.Index("READY=1", 0) >= 0 })

	// Without the unit's runtime directory a shell finds no such pool.
	r = e.runWith(env, "status\n", "attach", name, "--no-prompt")
	if r.code == 0 {
		t.Errorf("attach without POOLCTL_RUNTIME_DIR found the pool:\n%s%s", r.stdout, r.stderr)
	}
	// With it (as the unit's comment says), it does.
	hintEnv := append(append([]string(nil), env...), hint.env...)
	ready := len(ns.All())
	r = e.runWith(hintEnv, "status --json\nconfig demo=3\nwait 10\nstatus --json\nexit\n", append(hint.args, "--no-prompt")...)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", hint.line, r.code, r.stdout, r.stderr)
	}
	m := lastJSON(t, r.stdout)
	if m["name"] != name || int(m["pid"].(float64)) != master.Process.Pid || len(m["workers"].([]any)) != 3 {
		t.Errorf("attached status: name %v pid %v workers %v; want %s, %d, 3 workers", m["name"], m["pid"], m["workers"], name, master.Process.Pid)
	}
	over, err := os.ReadFile(filepath.Join(envVal, name, "overrides.spec"))
	if err != nil || strings.TrimSpace(string(over)) != "demo=3" {
		t.Errorf("overrides file in the unit's runtime directory: %q, %v", over, err)
	}
	if rel := ns.Index("RELOADING=1", ready); rel < 0 || ns.Index("READY=1", rel) < 0 {
		t.Errorf("no RELOADING=1 then READY=1 after config from the attached shell: %q", ns.All())
	}

	stopTimeout, _ := strconv.Atoi(svc["TimeoutStopSec"])
	if err := master.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("master exited with %v after QUIT, want status 0 (Restart=on-failure would restart it)", waitErr)
		}
	case <-time.After(time.Duration(stopTimeout) * time.Second):
		t.Fatalf("master still running %d s (TimeoutStopSec) after QUIT", stopTimeout)
	}
	if ns.Index("STOPPING=1", 0) < 0 {
		t.Errorf("no STOPPING=1: %q", ns.All())
	}
}

// runWith is run with env in place of the test's environment.
func (e *shellEnv) runWith(env []string, script string, args ...string) result {
	e.t.Helper()
	saved := e.env
	e.env = env
	defer func() { e.env = saved }()
	return e.run(script, args...)
}

// hintCommand is the attach command a unit's comment gives.
type hintCommand struct {
	line string
	env  []string // VAR=value assignments before the command
	args []string // poolctl's arguments
}

// attachHint finds "POOLCTL_RUNTIME_DIR=… poolctl attach NAME" in the
// unit's comments.
func attachHint(t *testing.T, unit string) hintCommand {
	t.Helper()
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "#"))
		if !strings.Contains(l, "poolctl attach ") {
			continue
		}
		h := hintCommand{line: l}
		words := strings.Fields(l)
		for i, w := range words {
			if w == "poolctl" {
				h.args = words[i+1:]
				break
			}
			if strings.Contains(w, "=") {
				h.env = append(h.env, w)
			}
		}
		return h
	}
	t.Fatalf("no attach command in the unit's comments:\n%s", unit)
	return hintCommand{}
}

// iniKeys reads an INI file (a unit, a supervisord section): section →
// key → value; comments (# and ;) and blank lines skipped.
func iniKeys(t *testing.T, text string) map[string]map[string]string {
	t.Helper()
	sections := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			cur = map[string]string{}
			sections[l[1:len(l)-1]] = cur
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || cur == nil {
				t.Fatalf("line %d is neither a section, a comment nor key=value: %q", n, l)
			}
			cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return sections
}
