package poolfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// docs/protocol.md is the contract: it must name every file of the
// runtime directory and every environment variable the code passes.
func TestProtocolDocNamesEveryFileAndVariable(t *testing.T) {
	b, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	p := PathsFor("/x", "n")
	v := reflect.ValueOf(p)
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Name == "Name" || f.Name == "Dir" {
			continue
		}
		if file := filepath.Base(v.Field(i).String()); !strings.Contains(doc, "`"+file+"`") {
			t.Errorf("docs/protocol.md does not name %s (Paths.%s)", file, f.Name)
		}
	}
	src, err := os.ReadFile("../../internal/workerenv/workerenv.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(src), "\n") {
		_, val, ok := strings.Cut(line, `= "`)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(val, `"`)
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/protocol.md does not name the worker variable %s", name)
		}
	}
	for _, name := range []string{"POOLCTL_RUNTIME_DIR", "POOLCTL_SHELL_PID", "POOLCTL_ARGS", "POOLCTL_JOB_ID"} {
		if !strings.Contains(doc, name) {
			t.Errorf("docs/protocol.md does not name %s", name)
		}
	}
}
