package redact

import "testing"

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:secret@localhost:6379/0":     "redis://:xxxxx@localhost:6379/0",
		"redis://user:secret@localhost:6379/0": "redis://user:xxxxx@localhost:6379/0",
		"rediss://secret@h:1":                  "rediss://xxxxx@h:1",
		"redis://:p@ss@h:1":                    "redis://:xxxxx@h:1",
		"redis://localhost:6379":               "redis://localhost:6379",
		"unix:///run/redis.sock":               "unix:///run/redis.sock",
		"":                                     "",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}
