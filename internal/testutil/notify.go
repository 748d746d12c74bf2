package testutil

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// NotifySocket listens where a master run with NOTIFY_SOCKET=Path sends
// its sd_notify datagrams, and collects them.
type NotifySocket struct {
	Path string
	mu   sync.Mutex
	msgs []string
}

// ListenNotify opens a unixgram socket in a temporary directory and
// collects what arrives there until the test ends.
func ListenNotify(t *testing.T) *NotifySocket {
	t.Helper()
	ns := &NotifySocket{Path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

// All returns the datagrams received so far, in order.
func (ns *NotifySocket) All() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.msgs...)
}

// Index is the position of the first datagram from `from` on that starts
// with prefix, -1 when none.
func (ns *NotifySocket) Index(prefix string, from int) int {
	for i, m := range ns.All() {
		if i >= from && strings.HasPrefix(m, prefix) {
			return i
		}
	}
	return -1
}
