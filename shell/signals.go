package shell

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// signals that kill! accepts by name.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "CONT": syscall.SIGCONT,
	"STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "WINCH": syscall.SIGWINCH, "ALRM": syscall.SIGALRM,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
}

func signalNames() []string {
	names := make([]string, 0, len(signals))
	for n := range signals {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseSignal accepts TERM, SIGTERM, term or 15.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal number %d out of range 1-64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (use a number or one of %s)", s, strings.Join(signalNames(), " "))
}

func sigName(sig syscall.Signal) string {
	for n, v := range signals {
		if v == sig {
			return "SIG" + n
		}
	}
	return "signal " + strconv.Itoa(int(sig))
}

func cmdKill(_ context.Context, s *Session, args []string) error {
	sig := syscall.SIGTERM
	if len(args) == 1 {
		var err error
		if sig, err = ParseSignal(args[0]); err != nil {
			return err
		}
	}
	pid, err := s.requireMaster()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal master %d: %w", pid, err)
	}
	switch sig {
	case syscall.SIGWINCH:
		s.expectPaused, s.expecting = true, false // what wait waits for now
	case syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL:
		s.watch.expectExit() // asked for: no news when it exits
	case syscall.SIGUSR2:
		s.usr2At = time.Now() // the master forwards it: workers pause
	case syscall.SIGCONT:
		s.usr2At = time.Time{} // forwarded too: workers resume
	}
	fmt.Fprintf(s.info, "sent %s to master %d\n", sigName(sig), pid)
	if s.owned != nil && s.owned.pid == pid {
		select {
		case <-s.owned.done:
			how := "exit 0"
			if s.owned.err != nil {
				how = s.owned.err.Error()
			}
			fmt.Fprintf(s.info, "master %d exited (%s)\n", pid, how)
		case <-time.After(time.Second):
		}
	} else if sig == syscall.SIGKILL {
		// Not our child: wait until its lock is released, so that a start
		// that follows finds the pool stopped.
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(pollInterval / 5) {
			if !s.pool().Running() {
				fmt.Fprintf(s.info, "master %d exited\n", pid)
				break
			}
		}
	}
	return nil
}
