package masterd

import (
	"os"
	"path/filepath"
	"testing"
)

// Only a regular, executable file counts as the lean binary: anything
// else would make poolctl exec something that is not a master.
func TestBinaryIn(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("exec", 0o755)
	write("owner-only", 0o700)
	write("plain", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("exec", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"exec": true, "owner-only": true, "link": true,
		"plain": false, "adir": false, "dangling": false, "absent": false,
	} {
		got := binaryIn(dir, name)
		if want && got != filepath.Join(dir, name) || !want && got != "" {
			t.Errorf("binaryIn(%q) = %q, want found=%v", name, got, want)
		}
	}
}

func TestFleetHost(t *testing.T) {
	t.Setenv("POOLCTL_HOST", "")
	for _, tc := range []struct {
		flag, env, want string
		bad             bool
	}{
		{flag: "web1", want: "web1"},
		{env: "web2", want: "web2"},
		{flag: "web1", env: "web2", want: "web1"},
		{flag: "a/b", bad: true},
		{env: "a b", bad: true},
	} {
		t.Setenv("POOLCTL_HOST", tc.env)
		got, err := fleetHost(tc.flag)
		if tc.bad {
			if err == nil {
				t.Errorf("fleetHost(%q) with POOLCTL_HOST=%q = %q, want a usage error", tc.flag, tc.env, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("fleetHost(%q) with POOLCTL_HOST=%q = %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
	}
}
