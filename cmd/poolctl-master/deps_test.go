package main

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are the shell's dependencies, and the built-in worker's code
// (which runs as poolctl-worker or `poolctl work`): the point of
// poolctl-master is a master whose address space holds none of them
// (issue 16).
var forbidden = []string{
	"github.com/poolctl/poolctl/shell",
	"github.com/poolctl/poolctl/tune",
	"github.com/poolctl/poolctl/worker",
	"github.com/c-bata/go-prompt",
	"github.com/charmbracelet/bubbletea",
	"charm.land/bubbletea",
	"charm.land/lipgloss",
	"github.com/charmbracelet/lipgloss",
}

func TestNoShellDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("poolctl-master depends on %s", d)
			}
		}
	}
}
