package proc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestParseStatCountsFieldsAfterTheLastParen(t *testing.T) {
	// A command name with spaces and parentheses, as a process may choose.
	line := "4242 (my (odd) name) S 17 4242 17 0 -1 4194560 100 0 0 0 7 5 3 4 20 0 1 0 123456 1000 10 0\n"
	s, err := ParseStat(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, PPID: 17, PGID: 4242, State: 'S', CPUTicks: 12, ChildTicks: 7, StartTicks: 123456, RSSPages: 10}
	if s != want {
		t.Errorf("ParseStat = %+v, want %+v", s, want)
	}
	if _, err := ParseStat(1, []byte("1 (x) S 0")); err == nil {
		t.Error("a truncated stat parsed")
	}
}

func TestChildrenAndReadStatOfRealProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		if k.PID == cmd.Process.Pid {
			found = k.PPID == os.Getpid() && k.PGID == cmd.Process.Pid && !k.Dead()
		}
	}
	if !found {
		t.Errorf("Children(%d) = %+v, want the sleep %d in its own group", os.Getpid(), kids, cmd.Process.Pid)
	}
	if _, err := ReadStat(-1); err == nil {
		t.Error("ReadStat(-1) succeeded")
	}
	if _, err := BootTime(); err != nil {
		t.Error(err)
	}
}
