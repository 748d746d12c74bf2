package pstree

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start runs a command in its own process group and registers cleanup that
// kills the group (by the child's pid, never by name) and reaps the child.
func start(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the group: the child and its children
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// find returns the node with pid in tree, or nil.
func find(tree *Proc, pid int32) *Proc {
	var found *Proc
	tree.Walk(func(p *Proc, _ int) {
		if p.PID == pid {
			found = p
		}
	})
	return found
}

// waitTree samples the tree under root until cond holds or the deadline
// passes, and returns the last tree.
func waitTree(t *testing.T, s *Sampler, root int32, what string, cond func(*Proc) bool) *Proc {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tree, err := s.Tree(context.Background(), root)
		if err != nil {
			t.Fatalf("Tree(%d): %v", root, err)
		}
		if cond(tree) {
			return tree
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; tree:\n%s", what, Format(tree))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTreeGrandchildren(t *testing.T) {
	sh := start(t, "sh", "-c", "sleep 30 & sleep 30 & wait")
	direct := start(t, "sleep", "31")
	self := int32(os.Getpid())
	shPID := int32(sh.Process.Pid)

	s := NewSampler()
	tree := waitTree(t, s, self, "sh with two children", func(tree *Proc) bool {
		n := find(tree, shPID)
		return n != nil && len(n.Children) == 2
	})

	if tree.PID != self || tree.PPID != int32(os.Getppid()) {
		t.Errorf("root = %d (ppid %d), want %d (ppid %d)", tree.PID, tree.PPID, self, os.Getppid())
	}
	if tree.CreateTime <= 0 {
		t.Errorf("root CreateTime = %d", tree.CreateTime)
	}
	var shNode, directNode *Proc
	for _, c := range tree.Children {
		switch c.PID {
		case shPID:
			shNode = c
		case int32(direct.Process.Pid):
			directNode = c
		}
	}
	if shNode == nil || directNode == nil {
		t.Fatalf("sh or direct child missing from root's children:\n%s", Format(tree))
	}
	for i := 1; i < len(tree.Children); i++ {
		if tree.Children[i-1].PID >= tree.Children[i].PID {
			t.Errorf("children not sorted by PID:\n%s", Format(tree))
		}
	}
	if !strings.Contains(directNode.Cmdline, "sleep 31") {
		t.Errorf("direct child Cmdline = %q", directNode.Cmdline)
	}
	if len(shNode.Children) != 2 {
		t.Fatalf("sh has %d children, want 2", len(shNode.Children))
	}
	for _, c := range shNode.Children {
		if c.PPID != shPID {
			t.Errorf("grandchild %d has PPID %d, want %d", c.PID, c.PPID, shPID)
		}
		if !strings.Contains(c.Cmdline, "sleep 30") {
			t.Errorf("grandchild Cmdline = %q, want sleep 30", c.Cmdline)
		}
		if c.RSSBytes == 0 {
			t.Errorf("grandchild %d RSS = 0", c.PID)
		}
		if len(c.Children) != 0 {
			t.Errorf("sleep %d has children", c.PID)
		}
	}
	if shNode.Children[0].PID >= shNode.Children[1].PID {
		t.Errorf("grandchildren not sorted by PID")
	}

	// Walk depths and Format indentation agree with the shape.
	depths := map[int32]int{}
	tree.Walk(func(p *Proc, d int) { depths[p.PID] = d })
	if depths[self] != 0 || depths[shPID] != 1 || depths[shNode.Children[0].PID] != 2 {
		t.Errorf("depths = %v", depths)
	}
	out := Format(tree)
	if !strings.Contains(out, "\n    ") || !strings.Contains(out, "sleep 30 (cpu ") || !strings.Contains(out, " MiB)") {
		t.Errorf("Format output unexpected:\n%s", out)
	}

	// A subtree can be rooted at the sh.
	sub, err := s.Tree(context.Background(), shPID)
	if err != nil {
		t.Fatal(err)
	}
	if sub.PID != shPID || len(sub.Children) != 2 {
		t.Fatalf("subtree:\n%s", Format(sub))
	}
}

func TestTreeNoSuchRoot(t *testing.T) {
	// A pid that existed and has been reaped, so it certainly does not exist
	// (barring immediate reuse, which is checked).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	if err := syscall.Kill(int(pid), 0); err == nil {
		t.Skipf("pid %d was reused", pid)
	}
	tree, err := NewSampler().Tree(context.Background(), pid)
	if err == nil || tree != nil {
		t.Fatalf("Tree(%d) = %v, %v; want error", pid, tree, err)
	}
	if !errors.Is(err, ErrNoProcess) {
		t.Fatalf("err = %v, want ErrNoProcess", err)
	}
	if _, err := NewSampler().Tree(context.Background(), math.MaxInt32); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("Tree(MaxInt32) err = %v", err)
	}
}

func TestTreeCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewSampler().Tree(ctx, int32(os.Getpid())); !errors.Is(err, context.Canceled) {
		t.Fatalf("Tree with cancelled context: err = %v", err)
	}
}

func TestCPUPercentIsRecent(t *testing.T) {
	busy := start(t, "sh", "-c", "while :; do :; done")
	idle := start(t, "sleep", "32")
	busyPID, idlePID := int32(busy.Process.Pid), int32(idle.Process.Pid)
	self := int32(os.Getpid())

	s := NewSampler()
	first, err := s.Tree(context.Background(), self)
	if err != nil {
		t.Fatal(err)
	}
	if n := find(first, busyPID); n == nil || n.CPUPercent != 0 {
		t.Fatalf("first sample of busy child: %+v, want present with 0%%", n)
	}
	// Samples ~300 ms apart until the busy loop shows up as busy.
	var last *Proc
	deadline := time.Now().Add(15 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond) // the measuring interval
		tree, err := s.Tree(context.Background(), self)
		if err != nil {
			t.Fatal(err)
		}
		last = find(tree, busyPID)
		if last != nil && last.CPUPercent > 10 {
			if n := find(tree, idlePID); n == nil || n.CPUPercent > 5 {
				t.Errorf("idle child: %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy child CPU%% never exceeded 10: %+v", last)
		}
	}
	if last.CPUPercent > 200 {
		t.Errorf("busy single-threaded child at %.1f%%", last.CPUPercent)
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{12*1024*1024 + 300*1024, "12.3 MiB"},
		{1024*1024 - 1, "1.0 MiB"},
		{5 * 1024 * 1024 * 1024, "5.0 GiB"},
		{math.MaxUint64, "16.0 EiB"},
	}
	for _, tt := range tests {
		if got := HumanBytes(tt.n); got != tt.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestFormatAndWalk(t *testing.T) {
	tree := &Proc{PID: 1, Cmdline: "poolctl master -c /run/x", RSSBytes: 12*1024*1024 + 300*1024, Children: []*Proc{
		{PID: 2, Cmdline: "poolctl-worker[resque:work] --queues foo", CPUPercent: 1.23, RSSBytes: 8 * 1024 * 1024, Children: []*Proc{
			{PID: 3, Cmdline: "sleep\n5", RSSBytes: 1024},
		}},
		{PID: 4, Cmdline: "[kthread]"},
	}}
	want := "1 poolctl master -c /run/x (cpu 0.0%, rss 12.3 MiB)\n" +
		"  2 poolctl-worker[resque:work] --queues foo (cpu 1.2%, rss 8.0 MiB)\n" +
		"    3 sleep 5 (cpu 0.0%, rss 1.0 KiB)\n" +
		"  4 [kthread] (cpu 0.0%, rss 0 B)\n"
	if got := Format(tree); got != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}
	var order []int32
	tree.Walk(func(p *Proc, _ int) { order = append(order, p.PID) })
	if len(order) != 4 || order[0] != 1 || order[1] != 2 || order[2] != 3 || order[3] != 4 {
		t.Errorf("Walk order = %v", order)
	}
	if Format(nil) != "" {
		t.Error("Format(nil) not empty")
	}
}

func BenchmarkTree(b *testing.B) {
	const n = 50
	for i := 0; i < n; i++ {
		start(b, "sleep", "60")
	}
	s := NewSampler()
	self := int32(os.Getpid())
	ctx := context.Background()
	// Wait until all children are visible.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tree, err := s.Tree(ctx, self)
		if err != nil {
			b.Fatal(err)
		}
		if len(tree.Children) >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d children visible", len(tree.Children))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Tree(ctx, self); err != nil {
			b.Fatal(err)
		}
	}
}
