package worker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/redistest"
	"github.com/poolctl/poolctl/internal/testutil"
	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/spec"
)

// replyPayload is a payload asking for replies to list with correlation
// id corr.
func replyPayload(t *testing.T, class, args, list, corr string) string {
	t.Helper()
	to, _ := json.Marshal(list)
	c, _ := json.Marshal(corr)
	return fmt.Sprintf(`{"class":%q,"args":%s,"reply_to":%s,"correlation_id":%s}`, class, args, to, c)
}

// repliesOf decodes the replies in list (relative to the namespace),
// failing on anything that is not a reply.
func (h *harness) repliesOf(list string) []queue.ReplyMessage {
	h.t.Helper()
	raw, err := h.rdb.LRange(bg, "resque:"+list, 0, -1).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]queue.ReplyMessage, len(raw))
	for i, r := range raw {
		dec := json.NewDecoder(strings.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			h.t.Fatalf("reply %d is not a reply: %v: %s", i, err, r)
		}
	}
	return out
}

// awaitReplies waits until list holds n replies and returns them.
func (h *harness) awaitReplies(list string, n int) []queue.ReplyMessage {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%d replies on %s", n, list), func() bool { return h.rdb.LLen(bg, "resque:"+list).Val() >= int64(n) })
	return h.repliesOf(list)
}

func statuses(ms []queue.ReplyMessage) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s/%d", m.Status, m.Attempt)
	}
	return strings.Join(s, " ")
}

func TestReplyTTLDefaultsAgree(t *testing.T) {
	if spec.DefaultReplyTTL != queue.DefaultReplyTTL {
		t.Fatalf("spec.DefaultReplyTTL %v != queue.DefaultReplyTTL %v", spec.DefaultReplyTTL, queue.DefaultReplyTTL)
	}
}

// Started, then completed, in order, with the correlation id, and the
// job's data: null for a built-in, stdout as JSON when it is JSON, else
// its last lines. The reply list expires reply_ttl after the last reply.
func TestReplyStartedThenCompleted(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}, ReplyTTL: 30 * time.Second, Jobs: map[string][]string{
		"Json": {"sh", "-c", `printf '{"sum": %s,\n "ok": true}\n' "$(( $(cat | tr -d '[]' | tr , +) ))"`},
		"Text": {"sh", "-c", `for i in $(seq 1 30); do echo "line $i"; done`},
	}})
	h.push("foo",
		replyPayload(t, "Poolctl::Noop", `[]`, "r:noop", "n1"),
		replyPayload(t, "Json", `[2,3]`, "r:json", "j1"),
		replyPayload(t, "Text", `[]`, "r:text", "t1"))
	for _, c := range []struct{ list, corr, class, data string }{
		{"r:noop", "n1", "Poolctl::Noop", `null`},
		{"r:json", "j1", "Json", `{"sum":5,"ok":true}`},
		{"r:text", "t1", "Text", func() string {
			var lines []string
			for i := 11; i <= 30; i++ {
				lines = append(lines, fmt.Sprintf("line %d", i))
			}
			b, _ := json.Marshal(strings.Join(lines, "\n"))
			return string(b)
		}()},
	} {
		got := h.awaitReplies(c.list, 2)
		if statuses(got) != "started/1 completed/1" {
			t.Fatalf("%s: replies %s, want started/1 completed/1", c.list, statuses(got))
		}
		for _, m := range got {
			if m.CorrelationID != c.corr || m.Class != c.class || m.Queue != "foo" || m.Worker != h.w.ID() || m.JobID == "" {
				t.Errorf("%s: reply %+v lacks the job's identity", c.list, m)
			}
			if _, err := time.Parse(time.RFC3339, m.At); err != nil {
				t.Errorf("%s: at %q: %v", c.list, m.At, err)
			}
		}
		if got[0].JobID != got[1].JobID {
			t.Errorf("%s: job ids %q and %q differ", c.list, got[0].JobID, got[1].JobID)
		}
		if got[0].Data != nil || got[0].DurationSeconds != nil {
			t.Errorf("%s: started carries data %s / duration", c.list, got[0].Data)
		}
		if string(got[1].Data) != c.data {
			t.Errorf("%s: data = %s, want %s", c.list, got[1].Data, c.data)
		}
		if got[1].DurationSeconds == nil || *got[1].DurationSeconds < 0 {
			t.Errorf("%s: completed without duration_seconds", c.list)
		}
		if ttl := h.rdb.PTTL(bg, "resque:"+c.list).Val(); ttl <= 0 || ttl > 30*time.Second {
			t.Errorf("%s: TTL %v, want (0, 30s]", c.list, ttl)
		}
	}
	if n := h.rdb.Exists(bg, "resque:poolctl:attempts:r:noop").Val(); n != 0 {
		t.Errorf("the attempts counter outlives the terminal reply")
	}
}

// Poolctl::Fail and a failing command: started, then failed with the
// failure as data.
func TestFailingJobsReplyFailedWithTheFailure(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}, Jobs: map[string][]string{
		"Broken": {"sh", "-c", "echo first >&2; echo 'disk on fire' >&2; exit 7"},
	}})
	h.push("foo", replyPayload(t, "Poolctl::Fail", `["boom"]`, "r1", "f1"), replyPayload(t, "Broken", `[]`, "r2", "f2"))
	got := h.awaitReplies("r1", 2)
	if statuses(got) != "started/1 failed/1" || got[1].CorrelationID != "f1" {
		t.Fatalf("Poolctl::Fail replies %s (%+v), want started/1 failed/1", statuses(got), got)
	}
	if want := `{"exception":"Poolctl::Failure","error":"boom","stderr_tail":[]}`; string(got[1].Data) != want {
		t.Errorf("Poolctl::Fail data = %s, want %s", got[1].Data, want)
	}
	got = h.awaitReplies("r2", 2)
	if statuses(got) != "started/1 failed/1" {
		t.Fatalf("command replies %s, want started/1 failed/1", statuses(got))
	}
	if want := `{"exception":"Poolctl::CommandFailed","error":"sh exited with status 7: disk on fire","exit_status":7,"stderr_tail":["first","disk on fire"]}`; string(got[1].Data) != want {
		t.Errorf("command data = %s, want %s", got[1].Data, want)
	}
}

// A job that cannot run gets a single failed reply, and nothing runs: a
// payload that does not decode but names a reply_to, an unknown class,
// args the class rejects.
func TestUnrunnableJobsGetOneFailedReplyAndNothingRuns(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	h := newHarness(t, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Known": {"touch", marker}}})
	cases := []struct{ payload, list, exception, error string }{
		{`{"class":"Known","args":"nope","reply_to":"r:args","correlation_id":"a"}`, "r:args",
			"Poolctl::BadPayload", `payload "args" must be an array, got "nope"`},
		{`{"class":42,"args":[],"reply_to":"r:class","correlation_id":"c"}`, "r:class",
			"Poolctl::BadPayload", `payload "class" must be a string, got 42`},
		{`{"class":"Known","args":[],"reply_to":"r:corr","correlation_id":{"x":1}}`, "r:corr",
			"Poolctl::BadPayload", `payload "correlation_id" must be a string, got {"x":1}`},
		{replyPayload(t, "Unknown", `[]`, "r:unknown", "u"), "r:unknown", "Poolctl::UnknownClass", "unknown job class Unknown"},
		{replyPayload(t, "Poolctl::Sleep", `["x"]`, "r:sleep", "s"), "r:sleep", "ArgumentError", `expected [milliseconds], got ["x"]`},
		{replyPayload(t, "Poolctl::Cpu", `[]`, "r:cpu", "p"), "r:cpu", "ArgumentError", `expected [milliseconds], got []`},
	}
	for _, c := range cases {
		h.push("foo", c.payload)
	}
	h.eventually("every job handled", func() bool { return h.stat("resque:stat:failed") == fmt.Sprint(len(cases)) })
	for _, c := range cases {
		got := h.repliesOf(c.list)
		if statuses(got) != "failed/1" {
			t.Errorf("%s: replies %s, want a single failed/1", c.list, statuses(got))
			continue
		}
		var d queue.FailureData
		if err := json.Unmarshal(got[0].Data, &d); err != nil || d.Exception != c.exception || d.Error != c.error {
			t.Errorf("%s: data %s, want %s: %s", c.list, got[0].Data, c.exception, c.error)
		}
	}
	if got := h.repliesOf("r:corr"); len(got) == 1 && got[0].CorrelationID != `{"x":1}` {
		t.Errorf("a non-string correlation_id comes back as %q, want its JSON text", got[0].CorrelationID)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("an unrunnable job ran")
	}
}

// A reply_to that names one of Resque's or poolctl's keys fails the job
// at once with the reason; nothing runs, and nothing is pushed there (a
// reply on a queue would be taken for a job).
func TestInvalidReplyToFailsTheJobAtOnce(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	h := newHarness(t, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Known": {"touch", marker}}})
	h.push("foo", replyPayload(t, "Known", `[]`, "queue:bar", "q"), `{"class":"Known","args":[],"reply_to":7}`)
	h.eventually("both failures", func() bool { return h.stat("resque:stat:failed") == "2" })
	var errs []string
	for _, r := range h.failures() {
		errs = append(errs, r.Error)
	}
	if !strings.Contains(errs[0], `"reply_to" "queue:bar" names one of Resque's or poolctl's own keys`) || errs[1] != `payload "reply_to" must be a string, got 7` {
		t.Errorf("failures = %q, want the reply_to reasons", errs)
	}
	if n := h.rdb.LLen(bg, "resque:queue:bar").Val(); n != 0 {
		t.Errorf("%d message(s) pushed onto queue:bar", n)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a job with an invalid reply_to ran")
	}
}

// Byte-identical payloads with one correlation id are distinct jobs:
// each gets its own started and completed, each its first attempt.
func TestIdenticalPayloadsEachGetTheirReplies(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}})
	same := replyPayload(t, "Poolctl::Noop", `[]`, "r", "same")
	h.push("foo", same, same, same)
	got := h.awaitReplies("r", 6)
	if statuses(got) != "started/1 completed/1 started/1 completed/1 started/1 completed/1" {
		t.Fatalf("replies %s, want three started/completed pairs", statuses(got))
	}
	ids := map[string]bool{}
	for _, m := range got {
		ids[m.JobID] = true
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct job ids over three jobs", len(ids))
	}
}

// Huge args and huge output: the replies stay small and correct; a
// reply_to with '/', ':' and non-ASCII names exactly that list.
func TestHugeJobsAndOddReplyNames(t *testing.T) {
	h := newHarness(t, Config{Queues: []string{"foo"}, Jobs: map[string][]string{
		"Chatty": {"sh", "-c", `cat >/dev/null; i=0; while [ $i -lt 3000 ]; do echo "row $i of output padded to be long enough"; i=$((i+1)); done`},
	}})
	huge := `["` + strings.Repeat("x", 900<<10) + `"]`
	odd := "replies/tenant:42/ünïcødé 🚀"
	h.push("foo", replyPayload(t, "Poolctl::Noop", huge, odd, "big"), replyPayload(t, "Chatty", huge, "r:chatty", "c"))
	got := h.awaitReplies(odd, 2)
	if statuses(got) != "started/1 completed/1" || got[1].CorrelationID != "big" {
		t.Fatalf("replies on %q: %s", odd, statuses(got))
	}
	got = h.awaitReplies("r:chatty", 2)
	var data string
	if statuses(got) != "started/1 completed/1" || json.Unmarshal(got[1].Data, &data) != nil {
		t.Fatalf("chatty replies %s, data %.80s", statuses(got), got[len(got)-1].Data)
	}
	lines := strings.Split(data, "\n")
	if len(lines) != replyDataLines || lines[len(lines)-1] != "row 2999 of output padded to be long enough" {
		t.Errorf("chatty data has %d lines ending %q, want its last %d", len(lines), lines[len(lines)-1], replyDataLines)
	}
}

// A worker SIGKILLed mid-job: the master's janitor (a Recoverer) requeues
// the job, the next worker runs it and replies started again with
// attempt 2, then the one terminal reply.
func TestCrashedJobStartsAgainWithAttempt2(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	mark := filepath.Join(dir, "first-run")
	jobs := map[string][]string{
		// The first run hangs (until its worker dies); the second succeeds.
		"Once": {"sh", "-c", `if [ -e "$1" ]; then echo '"second run"'; else touch "$1"; exec sleep 300; fi`, "sh", mark},
	}
	wp := startWorkerProcess(t, srv, jobs)
	pushJob(t, srv, replyPayload(t, "Once", `[]`, "r:crash", "k1"))
	rdb := srv.Client()
	testutil.Eventually(t, 10*time.Second, "the first run to start", func() bool {
		return fileExists(mark) && rdb.LLen(bg, "resque:r:crash").Val() == 1
	})
	if err := wp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-wp.done
	host, _ := os.Hostname()
	rec := queue.NewRecoverer(queue.New(rdb, ""), queue.RecovererOptions{Host: host,
		Alive: func(pid int, _ string) bool { return syscall.Kill(pid, 0) == nil }})
	r, err := rec.RecoverOnce(bg)
	if err != nil || r.Requeued != 1 {
		t.Fatalf("recovery = %+v, %v; want the crashed job requeued", r, err)
	}
	h := startWorker(t, srv, Config{Queues: []string{"foo"}, Jobs: jobs})
	got := h.awaitReplies("r:crash", 3)
	if statuses(got) != "started/1 started/2 completed/2" {
		t.Fatalf("replies %s, want started/1 started/2 completed/2", statuses(got))
	}
	if string(got[2].Data) != `"second run"` {
		t.Errorf("data = %s", got[2].Data)
	}
	// Nothing more comes: exactly one terminal reply, and no job left.
	h.eventually("the job to be acknowledged", func() bool { return !h.running() && h.stat("resque:stat:processed") == "1" })
	if got := h.repliesOf("r:crash"); len(got) != 3 {
		t.Errorf("replies %s after the job was acknowledged", statuses(got))
	}
}

// Redis stalls (SIGSTOP) longer than the worker's client timeout just as
// job 2 of 4 ends, so the call acknowledging it loses its reply and is
// retried: still exactly one terminal reply per job, and no job lost or
// run twice.
func TestStalledAckStillRepliesExactlyOnce(t *testing.T) {
	srv := redistest.Start(t)
	runs := filepath.Join(t.TempDir(), "runs")
	script := fmt.Sprintf(`echo run >> %s; if [ "$(wc -l < %s)" -eq 2 ]; then kill -STOP %d; fi`, runs, runs, srv.PID())
	h := faultWorker(t, srv, Config{Queues: []string{"foo"}, Jobs: map[string][]string{"Mark": {"sh", "-c", script}}})
	same := replyPayload(t, "Mark", `[]`, "r:stall", "s")
	h.push("foo", same, same, same, same)
	testutil.Eventually(t, 10*time.Second, "job 2 to stop redis-server", func() bool {
		return lineCount(runs) >= 2 && processState(srv.PID()) == 'T'
	})
	testutil.Eventually(t, 10*time.Second, "the worker to notice the stall", func() bool {
		return strings.Contains(h.out.String(), "Redis unavailable")
	})
	if err := srv.Thaw(); err != nil {
		t.Fatal(err)
	}
	h.eventually("every job acknowledged", func() bool {
		return h.stat("resque:stat:processed") == "4" && !h.running() && h.rdb.LLen(bg, "resque:queue:foo").Val() == 0
	})
	got := h.repliesOf("r:stall")
	if want := strings.Repeat("started/1 completed/1 ", 4); statuses(got)+" " != want {
		t.Fatalf("replies %s, want %s", statuses(got), want)
	}
	if n := lineCount(runs); n != 4 {
		t.Errorf("%d runs of 4 jobs", n)
	}
}
