package spec

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The README's config reference is an example users copy: it must parse
// as written and mean what its comments say.
func TestReadmeConfigExampleParses(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "### Config file (YAML)")
	if i < 0 {
		t.Fatal(`README has no "### Config file (YAML)" section`)
	}
	rest := readme[i:]
	start := strings.Index(rest, "```yaml\n")
	end := strings.Index(rest[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml block in the config reference")
	}
	example := rest[start+8 : start+8+end]
	cfg, err := ParseConfig([]byte(example), "README.md", "production")
	if err != nil {
		t.Fatalf("the README's config example does not parse: %v\n%s", err, example)
	}
	if cfg.HeartbeatInterval != 10*time.Second || cfg.HeartbeatExpiry != 5*time.Minute || cfg.RecoveryInterval != 30*time.Second {
		t.Errorf("heartbeat/recovery settings = %s, %s, %s", cfg.HeartbeatInterval, cfg.HeartbeatExpiry, cfg.RecoveryInterval)
	}
	if got := cfg.Workers.String(); !strings.Contains(got, "foo=8") {
		t.Errorf("production section not applied: workers %s", got)
	}
}
