package redisconn

import "testing"

func TestEffectiveNamespace(t *testing.T) {
	const cluster = "redis://127.0.0.1:7101?addr=127.0.0.1:7102&addr=127.0.0.1:7103"
	const sentinel = "redis://127.0.0.1:26379/0?master_name=pool&addr=127.0.0.1:26380"
	for _, c := range []struct {
		url, configured, want string
		noted                 bool
	}{
		{"redis://127.0.0.1:6379/0", "", "resque:", false},
		{"redis://127.0.0.1:6379/0", "resque:", "resque:", false},
		{"redis://127.0.0.1:6379/0", "myapp", "myapp:", false},
		{"unix:///tmp/r.sock", "resque:", "resque:", false},
		{sentinel, "resque:", "resque:", false}, // one master: no slots
		{cluster, "", "{resque}:", true},
		{cluster, "resque:", "{resque}:", true},
		{cluster, "resque", "{resque}:", true},
		{cluster, "myapp:resque:", "{myapp:resque}:", true},
		{cluster, "{resque}:", "{resque}:", false},
		{cluster, "app:{jobs}:", "app:{jobs}:", false},
		{cluster, "a{}:", "{a{}}:", true}, // "{}" is no tag: Redis hashes the whole key
		{cluster, "a{b:", "{a{b}:", true}, // no closing brace in the namespace
	} {
		ns, note := EffectiveNamespace(c.url, c.configured)
		if ns != c.want || (note != "") != c.noted {
			t.Errorf("EffectiveNamespace(%q, %q) = %q, note %q; want %q, noted %v", c.url, c.configured, ns, note, c.want, c.noted)
		}
		if !IsCluster(c.url) {
			continue
		}
		if !HasHashTag(ns) {
			t.Errorf("EffectiveNamespace(cluster, %q) = %q: no hash tag", c.configured, ns)
		}
	}
	_, note := EffectiveNamespace(cluster, "resque:")
	want := `namespace "resque:" has no hash tag and Redis Cluster needs every key of a job's operations in one slot: using "{resque}:" (Ruby producers must use the same: Resque.redis.namespace = "{resque}")`
	if note != want {
		t.Errorf("note = %q\nwant   %q", note, want)
	}
}
