package service

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// demo is the spec `poolctl export` builds for examples/demo.yml.
func demo() Spec {
	return Spec{
		Name:        "demo",
		Binary:      "/usr/local/bin/poolctl",
		Config:      "/srv/app/demo.yml",
		WorkDir:     "/srv/app",
		TermTimeout: 10 * time.Second,
		RuntimeDir:  "/run/poolctl-demo",
	}
}

func TestGolden(t *testing.T) {
	spaced := demo()
	spaced.Binary = "/opt/pool ctl/b%in/poolctl"
	spaced.Config = `/srv/my app/it's "$HOME".yml`
	spaced.WorkDir = "/srv/my app"
	spaced.RuntimeDir = "/var/run dir/poolctl-demo"
	spaced.TermTimeout = 1500 * time.Millisecond

	user := demo()
	user.User = "deploy"
	user.TermTimeout = time.Minute

	tmpl := demo()
	tmpl.Template = true
	tmpl.Name = ""
	tmpl.Config = "/etc/poolctl/%i.yml"
	tmpl.WorkDir = "/etc/poolctl"
	tmpl.RuntimeDir = "/run/poolctl-%i"
	tmpl.User = "deploy"

	sup := demo()
	sup.RuntimeDir = "/tmp/poolctl-demo"
	supUser := sup
	supUser.User = "www-data"
	supSpaced := spaced
	supSpaced.Config = "/srv/my app/50% it's.yml"

	tests := []struct {
		golden string
		render func(Spec) (string, error)
		spec   Spec
	}{
		{"demo.service", Systemd, demo()},
		{"user.service", Systemd, user},
		{"spaced.service", Systemd, spaced},
		{"poolctl@.service", Systemd, tmpl},
		{"demo.conf", Supervisord, sup},
		{"user.conf", Supervisord, supUser},
		{"spaced.conf", Supervisord, supSpaced},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			got, err := tt.render(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the golden file:\n%s", tt.golden, diff(string(want), got))
			}
		})
	}
}

// diff shows the first differing line of two texts.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n want " + wl + "\n  got " + gl
		}
	}
	return "(same lines)"
}

// TestSystemdKeys checks the settings the issue names, whatever the
// comments around them say.
func TestSystemdKeys(t *testing.T) {
	s := demo()
	s.User = "deploy"
	s.TermTimeout = 25 * time.Second
	out, err := Systemd(s)
	if err != nil {
		t.Fatal(err)
	}
	keys := unitKeys(out)
	want := map[string]string{
		"Type":                     "notify",
		"NotifyAccess":             "main",
		"ExecStart":                "/usr/local/bin/poolctl master -c /srv/app/demo.yml --name demo --overrides /run/poolctl-demo/demo/overrides.spec",
		"ExecReload":               "/bin/kill -HUP $MAINPID",
		"KillMode":                 "mixed",
		"KillSignal":               "SIGQUIT",
		"TimeoutStopSec":           "60", // 2 × 25 s + 10 s
		"Restart":                  "on-failure",
		"After":                    "network.target redis-server.service",
		"User":                     "deploy",
		"WorkingDirectory":         "/srv/app",
		"RuntimeDirectory":         "poolctl-demo",
		"RuntimeDirectoryMode":     "0700",
		"RuntimeDirectoryPreserve": "restart",
		"Environment":              "POOLCTL_RUNTIME_DIR=/run/poolctl-demo",
		"WantedBy":                 "multi-user.target",
	}
	for k, v := range want {
		if keys[k] != v {
			t.Errorf("%s=%q, want %q", k, keys[k], v)
		}
	}
}

// unitKeys maps each key of a unit file to its (last) value.
func unitKeys(unit string) map[string]string {
	keys := map[string]string{}
	for _, l := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			keys[k] = v
		}
	}
	return keys
}

// systemd creates (and removes) the runtime directory only where it is
// the unit's own: one level under /run, and per instance in a template.
func TestRuntimeDirectory(t *testing.T) {
	for _, tt := range []struct {
		dir      string
		template bool
		want     string // "" = no RuntimeDirectory=
	}{
		{"/run/poolctl-demo", false, "poolctl-demo"},
		{"/run/poolctl-%i", true, "poolctl-%i"},
		{"/run/poolctl-shared", true, ""},
		{"/run/a/b", false, ""},
		{"/var/run/poolctl-demo", false, ""},
		{"/tmp/poolctl-demo", false, ""},
		{"/run/with space", false, ""},
	} {
		s := demo()
		s.RuntimeDir, s.Template = tt.dir, tt.template
		if tt.template {
			s.Config = "/etc/poolctl/%i.yml"
		}
		out, err := Systemd(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := unitKeys(out)["RuntimeDirectory"]; got != tt.want {
			t.Errorf("runtime dir %s (template %v): RuntimeDirectory=%q, want %q", tt.dir, tt.template, got, tt.want)
		}
	}
}

func TestStopTimeout(t *testing.T) {
	for _, tt := range []struct {
		term time.Duration
		want string
	}{
		{0, "10"}, {10 * time.Second, "30"}, {1500 * time.Millisecond, "13"}, {time.Minute, "130"},
	} {
		if got := seconds(StopTimeout(tt.term)); got != tt.want {
			t.Errorf("StopTimeout(%s) = %s s, want %s", tt.term, got, tt.want)
		}
	}
}

// TestSystemdRoundTrip splits the rendered ExecStart and Environment the
// way systemd documents (systemd.service "Command lines", systemd.unit
// "Specifiers") and gets back the exact argv and value, for paths with
// every character that means something to systemd.
func TestSystemdRoundTrip(t *testing.T) {
	for _, p := range []string{
		"/plain/path", "/with space/x", `/quote"d/x`, "/it's/x", `/back\slash/x`, "/dollar$HOME/x",
		"/percent%i%n/x", "/semi;colon/x", "/é/ünïcode",
	} {
		s := demo()
		s.Binary = p + "/poolctl"
		s.Config = p + "/pool.yml"
		s.WorkDir = p
		s.RuntimeDir = p + "/rt"
		out, err := Systemd(s)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		keys := unitKeys(out)
		argv, err := splitSystemd(keys["ExecStart"], true)
		if err != nil {
			t.Fatalf("%q: ExecStart=%s: %v", p, keys["ExecStart"], err)
		}
		if want := s.argv(); strings.Join(argv, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("%q: ExecStart=%s splits into %q, want %q", p, keys["ExecStart"], argv, want)
		}
		env, err := splitSystemd(keys["Environment"], false)
		if err != nil || len(env) != 1 || env[0] != "POOLCTL_RUNTIME_DIR="+s.RuntimeDir {
			t.Errorf("%q: Environment=%s reads as %q (%v)", p, keys["Environment"], env, err)
		}
		if wd := strings.ReplaceAll(keys["WorkingDirectory"], "%%", "%"); wd != p {
			t.Errorf("%q: WorkingDirectory=%s reads as %q", p, keys["WorkingDirectory"], wd)
		}
		if _, ok := keys["RuntimeDirectory"]; ok {
			t.Errorf("%q: RuntimeDirectory= set for a runtime directory outside /run", p)
		}
	}
}

// splitSystemd splits a command line or an assignment list as systemd
// does: words separated by blanks, double or single quotes grouping,
// C-style backslash escapes; then specifiers ("%%" is '%', any other '%'
// is an error here since the test renders no template) and, in a command
// line's arguments (not the executable's path, which systemd takes
// literally), "$$" is '$' while a lone '$' would be expanded.
func splitSystemd(line string, command bool) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case r == '\\' && i+1 < len(rs):
			i++
			switch rs[i] {
			case 't':
				cur.WriteRune('\t')
			case 'n':
				cur.WriteRune('\n')
			default:
				cur.WriteRune(rs[i])
			}
			inWord = true
		case quote == 0 && (r == '"' || r == '\''):
			quote, inWord = r, true
		case quote == 0 && (r == ' ' || r == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	for i, w := range words {
		var b strings.Builder
		ws := []rune(w)
		for j := 0; j < len(ws); j++ {
			switch {
			case ws[j] == '%' && j+1 < len(ws) && ws[j+1] == '%':
				b.WriteRune('%')
				j++
			case ws[j] == '%':
				return nil, fmt.Errorf("unescaped specifier in %q", w)
			case command && i == 0:
				// The executable's path is not expanded.
				b.WriteRune(ws[j])
			case command && ws[j] == '$' && j+1 < len(ws) && ws[j+1] == '$':
				b.WriteRune('$')
				j++
			case command && ws[j] == '$':
				return nil, fmt.Errorf("unescaped variable in %q", w)
			default:
				b.WriteRune(ws[j])
			}
		}
		words[i] = b.String()
	}
	return words, nil
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"bad name", func(s *Spec) { s.Name = "my pool" }, `invalid pool name "my pool"`},
		{"dot name", func(s *Spec) { s.Name = ".." }, `invalid pool name ".."`},
		{"relative binary", func(s *Spec) { s.Binary = "bin/poolctl" }, `binary "bin/poolctl": must be an absolute path`},
		{"relative config", func(s *Spec) { s.Config = "demo.yml" }, `config "demo.yml": must be an absolute path`},
		{"newline", func(s *Spec) { s.Config = "/a\nb.yml" }, `config "/a\nb.yml": control character at byte 2`},
		{"tab", func(s *Spec) { s.WorkDir = "/a\tb" }, `working directory "/a\tb": control character at byte 2`},
		{"relative runtime dir", func(s *Spec) { s.RuntimeDir = "run" }, `runtime directory "run": must be an absolute path`},
		{"template without %i", func(s *Spec) { s.Template = true }, `config pattern "/srv/app/demo.yml": a template needs %i`},
		{"user with space", func(s *Spec) { s.User = "de ploy" }, `invalid user "de ploy"`},
		{"user upper case", func(s *Spec) { s.User = "Root" }, `invalid user "Root"`},
		{"user starting with a digit", func(s *Spec) { s.User = "1abc" }, `invalid user "1abc"`},
		{"user too long", func(s *Spec) { s.User = strings.Repeat("a", 32) }, "invalid user"},
		{"negative term_timeout", func(s *Spec) { s.TermTimeout = -time.Second }, "term_timeout -1s: must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := demo()
			tt.change(&s)
			for _, render := range []func(Spec) (string, error){Systemd, Supervisord} {
				out, err := render(s)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v, want one containing %q", err, tt.want)
				}
				if out != "" {
					t.Errorf("output %q along with an error", out)
				}
			}
		})
	}
	for _, u := range []string{"deploy", "www-data", "_svc", "a1_b-c", "1000", strings.Repeat("a", 31)} {
		s := demo()
		s.User = u
		if err := s.Validate(); err != nil {
			t.Errorf("user %q refused: %v", u, err)
		}
	}
}

func TestSupervisordRefuses(t *testing.T) {
	s := demo()
	s.Template, s.Config = true, "/etc/poolctl/%i.yml"
	if _, err := Supervisord(s); err == nil || !strings.Contains(err.Error(), "supervisord has no templates") {
		t.Errorf("template: error %v", err)
	}
	s = demo()
	s.Config = "/srv/a ;b/demo.yml"
	if _, err := Supervisord(s); err == nil || !strings.Contains(err.Error(), `config "/srv/a ;b/demo.yml": supervisord reads a blank followed by ';'`) {
		t.Errorf("inline comment: error %v", err)
	}
	s = demo()
	s.RuntimeDir = `/run/a"b`
	if _, err := Supervisord(s); err == nil || !strings.Contains(err.Error(), `cannot hold a '"'`) {
		t.Errorf("quote in runtime dir: error %v", err)
	}
}

// TestSupervisordRoundTrip splits the rendered command as supervisord
// does (its %-expansion, then a POSIX shlex split) and gets back the argv.
func TestSupervisordRoundTrip(t *testing.T) {
	for _, p := range []string{"/plain", "/with space", `/quote"d`, "/it's", `/back\slash`, "/dollar$HOME", "/50%done", "/semi;colon"} {
		s := demo()
		s.Binary, s.Config, s.WorkDir, s.RuntimeDir = p+"/poolctl", p+"/pool.yml", p, "/tmp/poolctl-demo"
		out, err := Supervisord(s)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		keys := unitKeys(out)
		argv, err := shlexSplit(strings.ReplaceAll(keys["command"], "%%", "%"))
		if err != nil {
			t.Fatalf("%q: command=%s: %v", p, keys["command"], err)
		}
		if want := s.argv(); strings.Join(argv, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("%q: command=%s splits into %q, want %q", p, keys["command"], argv, want)
		}
		if dir := strings.ReplaceAll(keys["directory"], "%%", "%"); dir != p {
			t.Errorf("%q: directory=%s reads as %q", p, keys["directory"], dir)
		}
	}
}

// shlexSplit is Python's shlex.split in POSIX mode (what supervisord
// uses): blanks split; single quotes are literal; double quotes allow
// backslash before '"' and '\\'; a backslash outside quotes escapes
// the next character.
func shlexSplit(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j == len(rs) {
				return nil, errors.New("no closing quotation")
			}
			cur.WriteString(string(rs[i+1 : j]))
			i, inWord = j, true
		case r == '"':
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && (rs[j+1] == '"' || rs[j+1] == '\\') {
					j++
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, errors.New("no closing quotation")
			}
			i, inWord = j, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
