package fleet

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeCommandRefuses(t *testing.T) {
	const addr = `"id":"c1","reply_to":"poolctl:reply:x"`
	cases := []struct {
		name, raw, want string
	}{
		{"argv", `{` + addr + `,"verb":"config","args":["foo=1"],"argv":["sh","-c","rm -rf /"]}`, `key "argv": a control message can never carry a command line`},
		{"command", `{` + addr + `,"operation":"start_worker","queues":"foo","command":"evil"}`, `key "command": a control message can never carry a command line`},
		{"cmd", `{` + addr + `,"verb":"ping","cmd":"x"}`, `key "cmd": a control message can never carry a command line`},
		{"ARGV upper case", `{` + addr + `,"verb":"ping","ARGV":["x"]}`, `key "ARGV": a control message can never carry a command line`},
		{"unknown key", `{` + addr + `,"verb":"ping","colour":"red"}`, `unknown key "colour"`},
		{"key in other case", `{"ID":"c1","reply_to":"poolctl:reply:x","verb":"ping"}`, `unknown key "ID"`},
		{"not an object", `["ping"]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"trailing data", `{` + addr + `,"verb":"ping"} {}`, "trailing data"},
		{"too big", `{` + addr + `,"verb":"config","args":["` + strings.Repeat("a", MaxCommandSize) + `=1"]}`, "the limit is 65536"},
		{"missing id", `{"reply_to":"poolctl:reply:x","verb":"ping"}`, `no "id"`},
		{"id wrong type", `{"id":5,"reply_to":"poolctl:reply:x","verb":"ping"}`, "Command.id"},
		{"missing reply_to", `{"id":"c1","verb":"ping"}`, `"reply_to" is empty`},
		{"reply_to a queue", `{"id":"c1","reply_to":"queue:foo","verb":"ping"}`, `names one of Resque's or poolctl's own keys`},
		{"reply_to a control list", `{"id":"c1","reply_to":"poolctl:control:h/p","verb":"ping"}`, `own keys`},
		{"neither verb nor operation", `{` + addr + `}`, `neither "verb" nor "operation"`},
		{"both", `{` + addr + `,"verb":"ping","operation":"stop_worker","queues":"foo"}`, `both "verb" and "operation"`},
		{"unknown verb", `{` + addr + `,"verb":"exec"}`, `unknown verb "exec"`},
		{"ping with args", `{` + addr + `,"verb":"ping","args":["x"]}`, "ping takes no arguments"},
		{"stop with args", `{` + addr + `,"verb":"stop","args":["now"]}`, "stop takes no arguments"},
		{"reload with args", `{` + addr + `,"verb":"reload","args":["x"]}`, "reload takes no arguments"},
		{"status with args", `{` + addr + `,"verb":"status","args":["x"]}`, "status takes no arguments"},
		{"config without words", `{` + addr + `,"verb":"config"}`, "config needs at least one spec word"},
		{"config empty word", `{` + addr + `,"verb":"config","args":["foo=1",""]}`, "argument 2 of config is empty"},
		{"autoscale without on/off", `{` + addr + `,"verb":"autoscale","args":["foo"]}`, `autoscale needs "on" or "off"`},
		{"autoscale bare", `{` + addr + `,"verb":"autoscale"}`, `autoscale needs "on" or "off"`},
		{"vumi key with verb", `{` + addr + `,"verb":"config","args":["a=1"],"queues":"foo"}`, `key "queues" only goes with "operation"`},
		{"unknown operation", `{` + addr + `,"operation":"spawn","queues":"foo"}`, `unknown operation "spawn"`},
		{"start_worker without queues", `{` + addr + `,"operation":"start_worker","worker_name":"smpp-1"}`, `needs "queues"`},
		{"start_worker bad queues", `{` + addr + `,"operation":"start_worker","queues":"foo=3:bar"}`, `is not one queue list`},
		{"negative count", `{` + addr + `,"operation":"start_worker","queues":"foo","count":-1}`, `"count" is -1; it must be 0 or more`},
		{"huge count", `{` + addr + `,"operation":"start_worker","queues":"foo","count":100000}`, `"count" is 100000; the limit is 1000`},
		{"fractional count", `{` + addr + `,"operation":"start_worker","queues":"foo","count":1.5}`, `Command.count`},
		{"stop_worker with count", `{` + addr + `,"operation":"stop_worker","queues":"foo","count":2}`, `stop_worker sets the count to 0`},
		{"args with operation", `{` + addr + `,"operation":"stop_worker","queues":"foo","args":["x"]}`, `"args" goes with "verb"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd, err := DecodeCommand([]byte(c.raw))
			if err == nil {
				t.Fatalf("accepted %s as %+v", c.raw, cmd)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestDecodeCommandAccepts(t *testing.T) {
	two := 2
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		raw  string
		want Command
	}{
		{`{"id":"1","reply_to":"poolctl:reply:a","verb":"ping"}`,
			Command{ID: "1", ReplyTo: "poolctl:reply:a", Verb: VerbPing}},
		{`{"id":"2","reply_to":"my-replies","verb":"config","args":["foo=4","bar=0"],"expires_at":"2030-01-02T03:04:05Z"}`,
			Command{ID: "2", ReplyTo: "my-replies", Verb: VerbConfig, Args: []string{"foo=4", "bar=0"}, ExpiresAt: exp}},
		{`{"id":"3","reply_to":"r","verb":"autoscale","args":["off","foo"]}`,
			Command{ID: "3", ReplyTo: "r", Verb: VerbAutoscale, Args: []string{"off", "foo"}}},
		{`{"id":"4","reply_to":"r","verb":"pause"}`,
			Command{ID: "4", ReplyTo: "r", Verb: VerbPause}},
		{`{"id":"5","reply_to":"r","operation":"start_worker","worker_name":"smpp-1","queues":"foo","count":2}`,
			Command{ID: "5", ReplyTo: "r", Operation: OpStartWorker, WorkerName: "smpp-1", Queues: "foo", Count: &two}},
		{`{"id":"6","reply_to":"r","operation":"stop_worker","worker_name":"smpp-1","queues":"foo,bar"}`,
			Command{ID: "6", ReplyTo: "r", Operation: OpStopWorker, WorkerName: "smpp-1", Queues: "foo,bar"}},
	}
	for _, c := range cases {
		got, err := DecodeCommand([]byte(c.raw))
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.raw, got, c.want)
		}
	}
}

func TestConfigWords(t *testing.T) {
	three, zero := 3, 0
	cases := []struct {
		cmd  Command
		want string // "" = refused
		err  string
	}{
		{Command{Operation: OpStartWorker, Queues: "foo"}, "foo=1", ""},
		{Command{Operation: OpStartWorker, Queues: "foo,bar", Count: &three}, "foo,bar=3", ""},
		{Command{Operation: OpStartWorker, Queues: "foo", Count: &zero}, "foo=0", ""},
		{Command{Operation: OpStopWorker, Queues: "foo"}, "foo=0", ""},
		{Command{Operation: OpStartWorker, Queues: "foo", WorkerConfig: []byte(` { } `)}, "foo=1", ""},
		{Command{Operation: OpStartWorker, Queues: "foo", WorkerConfig: []byte(`null`)}, "foo=1", ""},
		{Command{Operation: OpStartWorker, Queues: "foo", WorkerClass: "vumi.Worker"}, "", "worker_class is not supported"},
		{Command{Operation: OpStartWorker, Queues: "foo", WorkerConfig: []byte(`{"cmd":"x"}`)}, "", "worker_config is not supported"},
	}
	for _, c := range cases {
		words, err := c.cmd.ConfigWords()
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%+v: err %v, want %q", c.cmd, err, c.err)
		case c.err == "" && (err != nil || len(words) != 1 || words[0] != c.want):
			t.Errorf("%+v: %q %v, want %q", c.cmd, words, err, c.want)
		}
	}
}

func TestReplyAddress(t *testing.T) {
	id, to, ok := replyAddress([]byte(`{"id":"x","reply_to":"poolctl:reply:1","argv":["sh"]}`))
	if !ok || id != "x" || to != "poolctl:reply:1" {
		t.Errorf("address of a refused command: %q %q %v", id, to, ok)
	}
	for _, raw := range []string{`{"reply_to":"r"}`, `{"id":"x","reply_to":"queue:foo"}`, `not json`, `{"id":"x"}`} {
		if _, _, ok := replyAddress([]byte(raw)); ok {
			t.Errorf("%s has no usable reply address, but one was found", raw)
		}
	}
}
