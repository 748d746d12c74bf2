package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestEnvironments(t *testing.T) {
	dir := t.TempDir()
	for data, want := range map[string][]string{
		"workers: {foo: 1}\n": nil,
		"workers: {foo: 1}\nenvironments:\n  production: {workers: {foo: 2}}\n  staging:\n": {"production", "staging"},
		"foo: 1\nproduction:\n  foo: 2\ndev:\n  bar: 1\n":                                   {"production", "dev"},
	} {
		path := filepath.Join(dir, "pool.yml")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Environments(path)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Environments(%q) = %v, %v; want %v", data, got, err, want)
		}
	}
	if _, err := Environments(filepath.Join(dir, "missing.yml")); err == nil {
		t.Error("a missing file is not an error")
	}
}
