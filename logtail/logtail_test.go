package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poolctl/poolctl/internal/testutil"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// verifyNoLeaks fails the test if goroutines other than the test's own are
// still running after 10 s. nxadm/tail's polling goroutine sleeps up to
// 250 ms before it notices a stopped tail, which is close to goleak's own
// retry budget, hence the outer deadline; it bounds "eventually", and a
// CI host slowed 5-10x for seconds can take 2 s to get there.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaked goroutines: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer = testutil.Buffer

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pool.log")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Error(err)
	}
}

// followAsync runs Follow in a goroutine and returns a function that waits
// for its result.
func followAsync(ctx context.Context, path string, from int64, w *syncBuffer, stop func(string) bool) func() error {
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, path, from, w, stop) }()
	return func() error { return <-errc }
}

func TestLastLinesOffset(t *testing.T) {
	long := strings.Repeat("x", 5000) // longer than one block
	tests := []struct {
		name    string
		content string
		n       int
		want    int64
	}{
		{"empty", "", 3, 0},
		{"trailing newline", "a\nbb\nccc\n", 2, 2},
		{"no trailing newline", "a\nbb\nccc", 2, 2},
		{"one line trailing newline", "a\nbb\nccc\n", 1, 5},
		{"one line no trailing newline", "a\nbb\nccc", 1, 5},
		{"all lines", "a\nbb\nccc\n", 3, 0},
		{"n larger than file", "a\nbb\nccc\n", 10, 0},
		{"n zero is size", "a\nbb\nccc\n", 0, 9},
		{"n negative is size", "a\nbb", -1, 4},
		{"empty lines", "\n\n\n", 2, 1},
		{"only newline", "\n", 1, 0},
		{"line spanning blocks", "a\n" + long + "\nb\n", 2, 2},
		{"line spanning blocks, all", "a\n" + long + "\nb\n", 3, 0},
		{"newline at block boundary", strings.Repeat("y", 4095) + "\n" + strings.Repeat("z", 4095) + "\n", 1, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, tt.content)
			got, err := LastLinesOffset(p, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("LastLinesOffset(%q, %d) = %d, want %d", tt.name, tt.n, got, tt.want)
			}
		})
	}
}

func TestLastLinesOffsetManyBlocks(t *testing.T) {
	var b strings.Builder
	var starts []int64
	for i := 0; i < 2000; i++ {
		starts = append(starts, int64(b.Len()))
		fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("-", i%37))
	}
	p := writeFile(t, b.String())
	for _, n := range []int{1, 2, 100, 999, 1999, 2000} {
		got, err := LastLinesOffset(p, n)
		if err != nil {
			t.Fatal(err)
		}
		if want := starts[len(starts)-n]; got != want {
			t.Errorf("n=%d: got %d, want %d", n, got, want)
		}
	}
}

func TestLastLinesOffsetMissingFile(t *testing.T) {
	_, err := LastLinesOffset(filepath.Join(t.TempDir(), "nope"), 1)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestReadRange(t *testing.T) {
	p := writeFile(t, "one\ntwo\nthree\npart")
	var b bytes.Buffer
	off, err := ReadRange(p, 0, 19, &b)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != "one\ntwo\nthree\n" || off != 14 {
		t.Fatalf("got %q, %d", b.String(), off)
	}
	b.Reset()
	off, err = ReadRange(p, 4, 10, &b) // "two\nth": only "two\n" is complete
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != "two\n" || off != 8 {
		t.Fatalf("got %q, %d", b.String(), off)
	}
	b.Reset()
	off, err = ReadRange(p, 8, -1, &b)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != "three\n" || off != 14 {
		t.Fatalf("got %q, %d", b.String(), off)
	}
	b.Reset()
	off, err = ReadRange(p, 14, 1000, &b)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != "" || off != 14 {
		t.Fatalf("got %q, %d", b.String(), off)
	}
}

func TestReadRangeLongLines(t *testing.T) {
	var want strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&want, "%d %s\n", i, strings.Repeat("x", i*500))
	}
	p := writeFile(t, want.String()+"tail-without-newline")
	var b bytes.Buffer
	off, err := ReadRange(p, 0, -1, &b)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != want.String() || off != int64(want.Len()) {
		t.Fatalf("mismatch: got %d bytes, off %d, want %d", b.Len(), off, want.Len())
	}
}

func TestFollowPartialWrites(t *testing.T) {
	p := writeFile(t, "old\n")
	from, err := LastLinesOffset(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	wait := followAsync(ctx, p, from, &out, nil)

	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// One line in three pieces, with pauses longer than the poll interval
	// so the tail certainly sees the partial line.
	for _, piece := range []string{"first ", "half of ", "a line\nsecond line\nthird"} {
		if _, err := f.WriteString(piece); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if _, err := f.WriteString(" line\n"); err != nil {
		t.Fatal(err)
	}
	want := "first half of a line\nsecond line\nthird line\n"
	waitFor(t, 15*time.Second, "three lines", func() bool { return out.String() == want })
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow = %v, want context.Canceled", err)
	}
	if got := out.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestFollowStopFunc(t *testing.T) {
	p := writeFile(t, "before\n")
	re := regexp.MustCompile(`^ready on port \d+$`)
	var out syncBuffer
	wait := followAsync(context.Background(), p, 0, &out, re.MatchString)
	waitFor(t, 15*time.Second, "first line", func() bool { return out.String() == "before\n" })
	appendFile(t, p, "starting\nready on port 6379\nafter\n")

	errc := make(chan error, 1)
	go func() { errc <- wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Follow = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after the stop line")
	}
	if got, want := out.String(), "before\nstarting\nready on port 6379\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Follow returns promptly once its context ends: within 1 s, the median
// of five cancels. One cancel's time also counts a loaded CI host
// descheduling the test; a Follow that waited for a line or sat out
// polls would be slow every time.
func TestFollowCancelIsPromptAndLeaksNothing(t *testing.T) {
	took := make([]time.Duration, 5)
	for i := range took {
		p := writeFile(t, "a\nb\n")
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		wait := followAsync(ctx, p, 0, &out, nil)
		waitFor(t, 15*time.Second, "two lines", func() bool { return out.String() == "a\nb\n" })

		start := time.Now()
		cancel()
		errc := make(chan error, 1)
		go func() { errc <- wait() }()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Follow = %v, want context.Canceled", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Follow did not return within 15 s of cancel")
		}
		took[i] = time.Since(start)
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	if d := sorted[len(sorted)/2]; d > time.Second {
		t.Fatalf("Follow took a median %v to return after cancel (%v)", d, took)
	}
	verifyNoLeaks(t)
}

func TestFollowCancelledContext(t *testing.T) {
	p := writeFile(t, "a\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out syncBuffer
	if err := Follow(ctx, p, 0, &out, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow = %v", err)
	}
}

func TestFollowWaitsForFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "later.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	wait := followAsync(ctx, p, 0, &out, nil)
	appendFile(t, p, "hello\n")
	waitFor(t, 15*time.Second, "line from late file", func() bool { return out.String() == "hello\n" })
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestFollowRotation rotates the file by rename while lines keep coming,
// including lines written to the old file after the rename (as a master does
// until it handles HUP and reopens its log). No line may be lost.
func TestFollowRotation(t *testing.T) {
	p := writeFile(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	wait := followAsync(ctx, p, 0, &out, nil)

	var want strings.Builder
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	writeLines := func(n int) {
		for i := 0; i < n; i++ {
			s := fmt.Sprintf("line %03d\n", line)
			line++
			want.WriteString(s)
			if _, err := f.WriteString(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeLines(10)
	waitFor(t, 15*time.Second, "first lines", func() bool { return strings.Count(out.String(), "\n") >= 5 })
	for rot := 0; rot < 3; rot++ {
		writeLines(5) // probably not polled before the rename
		if err := os.Rename(p, fmt.Sprintf("%s.%d", p, rot)); err != nil {
			t.Fatal(err)
		}
		writeLines(3) // still to the old file, after the rename
		time.Sleep(50 * time.Millisecond)
		writeLines(2)
		f.Close()
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		writeLines(10)
		waitFor(t, 15*time.Second, "lines after rotation", func() bool { return out.String() == want.String() })
	}
	f.Close()
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want.String())
	}
}

func TestFollowTruncation(t *testing.T) {
	p := writeFile(t, "one\ntwo\nthree\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	wait := followAsync(ctx, p, 0, &out, nil)
	waitFor(t, 15*time.Second, "initial lines", func() bool { return out.String() == "one\ntwo\nthree\n" })
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	// nxadm/tail detects truncation by size only, so let it see the shorter
	// file before it grows again.
	time.Sleep(600 * time.Millisecond)
	appendFile(t, p, "four\n")
	waitFor(t, 15*time.Second, "line after truncation", func() bool {
		return out.String() == "one\ntwo\nthree\nfour\n"
	})
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestFollowTwoConcurrent(t *testing.T) {
	p := writeFile(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out1, out2 syncBuffer
	wait1 := followAsync(ctx, p, 0, &out1, nil)
	wait2 := followAsync(ctx, p, 0, &out2, nil)
	var want strings.Builder
	for i := 0; i < 100; i++ {
		s := fmt.Sprintf("entry %d\n", i)
		want.WriteString(s)
		appendFile(t, p, s)
		if i%25 == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(t, 15*time.Second, "all lines in both", func() bool {
		return out1.String() == want.String() && out2.String() == want.String()
	})
	cancel()
	if err := wait1(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if err := wait2(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestFollowFromLastLines(t *testing.T) {
	p := writeFile(t, "a\nb\nc\nd\n")
	from, err := LastLinesOffset(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	wait := followAsync(ctx, p, from, &out, nil)
	appendFile(t, p, "e\n")
	waitFor(t, 15*time.Second, "last two lines and new line", func() bool { return out.String() == "c\nd\ne\n" })
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFollowWriteError(t *testing.T) {
	p := writeFile(t, "a\n")
	err := Follow(context.Background(), p, 0, failWriter{}, nil)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Follow = %v, want write error", err)
	}
}

func TestCursor(t *testing.T) {
	p := writeFile(t, "one\ntwo\n")
	c := NewCursor(p)
	if c.Offset() != 0 {
		t.Fatalf("new cursor at %d", c.Offset())
	}
	toEOF := func() string {
		t.Helper()
		var b bytes.Buffer
		if err := c.ToEOF(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := toEOF(); got != "one\ntwo\n" || c.Offset() != 8 {
		t.Fatalf("ToEOF = %q, offset %d", got, c.Offset())
	}
	if got := toEOF(); got != "" {
		t.Fatalf("second ToEOF = %q", got)
	}

	appendFile(t, p, "thr")
	if got := toEOF(); got != "" || c.Offset() != 8 {
		t.Fatalf("partial line: ToEOF = %q, offset %d", got, c.Offset())
	}
	appendFile(t, p, "ee\n")
	if got := toEOF(); got != "three\n" || c.Offset() != 14 {
		t.Fatalf("completed line: ToEOF = %q, offset %d", got, c.Offset())
	}

	c.SetOffset(4)
	if got := toEOF(); got != "two\nthree\n" {
		t.Fatalf("after SetOffset(4): ToEOF = %q", got)
	}
	c.SetOffset(-1)
	if c.Offset() != 0 {
		t.Fatalf("SetOffset(-1): offset %d", c.Offset())
	}

	c.Rewind()
	if c.Offset() != 0 {
		t.Fatalf("Rewind: offset %d", c.Offset())
	}
	if got := toEOF(); got != "one\ntwo\nthree\n" {
		t.Fatalf("after Rewind: ToEOF = %q", got)
	}

	c.Rewind()
	appendFile(t, p, "four\nfi")
	if err := c.FastForward(); err != nil {
		t.Fatal(err)
	}
	if c.Offset() != 19 { // start of the unfinished "fi..." line
		t.Fatalf("FastForward: offset %d, want 19", c.Offset())
	}
	appendFile(t, p, "ve\nsix\n")
	if got := toEOF(); got != "five\nsix\n" {
		t.Fatalf("after FastForward: ToEOF = %q", got)
	}

	// Rotation: the new file is shorter than the offset, so read from 0.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "new\n")
	if got := toEOF(); got != "new\n" || c.Offset() != 4 {
		t.Fatalf("after rotation: ToEOF = %q, offset %d", got, c.Offset())
	}
}

func TestCursorMissingFile(t *testing.T) {
	c := NewCursor(filepath.Join(t.TempDir(), "nope.log"))
	if err := c.FastForward(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("FastForward = %v", err)
	}
	if err := c.ToEOF(&bytes.Buffer{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ToEOF = %v", err)
	}
}
