package redisconn

import (
	"strings"
	"testing"
)

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

func TestOpenRejectsBadURLsWithoutLeakingPasswords(t *testing.T) {
	for url, want := range map[string]string{
		"bogus://:pw@x":                 "redis URL bogus://:xxxxx@x: redis: invalid URL scheme: bogus",
		"redis://:secret@host:notaport": "redis URL redis://:xxxxx@host:notaport: ",
		"":                              "redis URL : ",
	} {
		_, err := Open(url, Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("Open(%q) error = %q, want prefix %q and no password", url, err, want)
		}
	}
}
