package redisconn

import "testing"

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:secret@localhost:6379/0":     "redis://:xxxxx@localhost:6379/0",
		"redis://user:secret@localhost:6379/0": "redis://user:xxxxx@localhost:6379/0",
		"rediss://secret@h:1":                  "rediss://xxxxx@h:1",
		"redis://localhost:6379":               "redis://localhost:6379",
		"unix:///run/redis.sock":               "unix:///run/redis.sock",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
