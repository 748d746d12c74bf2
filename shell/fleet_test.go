package shell

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/fleet"
)

func TestParseFleetArgs(t *testing.T) {
	words, o, err := ParseFleetArgs([]string{"config", "--json", "a/p", "--timeout", "1s", "foo=2", "--expire=1m", "--", "--odd"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(words, " ") != "config a/p foo=2 --odd" || !o.JSON || o.Timeout != time.Second || o.Expire != time.Minute {
		t.Errorf("ParseFleetArgs = %q, %+v", words, o)
	}
	for _, args := range [][]string{{"--timeout"}, {"--timeout", "soon"}, {"--timeout", "-1s"}, {"--count", "0"}, {"--verbose"}, {"--json=1"}} {
		if _, _, err := ParseFleetArgs(args); err == nil {
			t.Errorf("ParseFleetArgs(%q) succeeded", args)
		}
	}
}

func TestFleetCommandOf(t *testing.T) {
	for _, tc := range []struct {
		verb   string
		args   []string
		target string
		want   []string
		err    string
	}{
		{verb: "config", args: []string{"a/p", "foo=2", "bar=0"}, target: "a/p", want: []string{"foo=2", "bar=0"}},
		{verb: "pause", args: []string{"a/p"}, target: "a/p"},
		{verb: "resume", args: []string{"a/p", "foo,bar"}, target: "a/p", want: []string{"foo,bar"}},
		{verb: "autoscale", args: []string{"off", "a/p", "foo"}, target: "a/p", want: []string{"off", "foo"}},
		{verb: "status", args: []string{"a.example.com/p-1"}, target: "a.example.com/p-1"},
		{verb: "config", args: []string{"a/p", "foo=x"}, err: `"foo=x"`},
		{verb: "config", args: []string{"a/p"}, err: "needs spec words"},
		{verb: "config", args: []string{"ap", "foo=1"}, err: `bad pool id "ap"`},
		{verb: "config", args: []string{"a/p/q", "foo=1"}, err: `bad pool id "a/p/q"`},
		{verb: "status", args: []string{"/p"}, err: "bad pool id"},
		{verb: "status", args: nil, err: "needs the pool's HOST/NAME"},
		{verb: "status", args: []string{"a/p", "extra"}, err: `"extra"`},
		{verb: "pause", args: []string{"a/p", "foo=1"}, err: `"foo=1" is not a queue list`},
		{verb: "autoscale", args: []string{"a/p"}, err: "on or off"},
		{verb: "restart", args: []string{"a/p"}, err: `unknown fleet command "restart"`},
	} {
		cmd, target, err := fleetCommandOf(tc.verb, tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: error %v, want one containing %s", tc.verb, tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || target != tc.target || cmd.Verb != tc.verb || strings.Join(cmd.Args, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s %q = %+v, %q, %v", tc.verb, tc.args, cmd, target, err)
		}
		if _, err := fleet.DecodeCommand(mustJSON(t, cmd, "x", "poolctl:reply:x")); err != nil {
			t.Errorf("%s %q: the master would refuse %+v: %v", tc.verb, tc.args, cmd, err)
		}
	}
}

func mustJSON(t *testing.T, c fleet.Command, id, replyTo string) []byte {
	t.Helper()
	c.ID, c.ReplyTo = id, replyTo
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFleetSuggestions(t *testing.T) {
	s := &Session{fleetSeen: []string{"a/p", "b/p"}}
	texts := func(args []string, newWord bool) string {
		var out []string
		for _, sg := range fleetSuggestions(s, args, newWord) {
			out = append(out, sg.Text)
		}
		return strings.Join(out, " ")
	}
	if got := texts(nil, true); !strings.Contains(got, "ping") || !strings.Contains(got, "config") {
		t.Errorf("verbs = %q", got)
	}
	if got := texts([]string{"config"}, true); got != "a/p b/p" {
		t.Errorf("pools after config = %q", got)
	}
	if got := texts([]string{"autoscale"}, true); got != "on off" {
		t.Errorf("after autoscale = %q", got)
	}
	if got := texts([]string{"autoscale", "on"}, true); got != "a/p b/p" {
		t.Errorf("pools after autoscale on = %q", got)
	}
	if got := texts([]string{"ping"}, true); !strings.Contains(got, "--timeout") {
		t.Errorf("after ping = %q", got)
	}
}
