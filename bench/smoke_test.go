package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSmoke runs every scenario once at tiny scale against the real
// binary and a private redis-server. It checks only that each produced a
// number, never a target: this is a benchmark harness, not a timed test.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts masters and a redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (apt-get install -y redis-server)")
	}
	bin := filepath.Join(t.TempDir(), "poolctl")
	build := exec.Command("go", "build", "-o", bin, "../cmd/poolctl")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build poolctl: %v", err)
	}
	var out bytes.Buffer
	rep, err := runAll(bin, smokeSizes, nil, &out, true)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Errorf("scenario failed: %s", e)
	}
	got := map[string]Result{}
	for _, r := range rep.Results {
		got[r.Key] = r
	}
	for _, r := range rows(smokeSizes) {
		if r.key == "drain_4" || r.key == "drain_8" {
			continue // not run at smoke scale
		}
		res, ok := got[r.key]
		switch {
		case !ok:
			t.Errorf("%s: no result", r.key)
		case r.zeroOK && res.Median < 0, !r.zeroOK && res.Median <= 0:
			t.Errorf("%s: implausible value %v", r.key, res.Median)
		}
	}
}
