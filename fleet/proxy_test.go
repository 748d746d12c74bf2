package fleet

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy forwards TCP connections to a Redis; Blackhole makes the
// connections open so far go silent without closing, as when a host or a
// network path vanishes, while new connections work.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	dead   []*atomic.Bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		dead := new(atomic.Bool)
		p.mu.Lock()
		p.dead = append(p.dead, dead)
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go pipe(c, s, dead)
		go pipe(s, c, dead)
	}
}

// pipe copies src to dst until src ends; once dead, it drops the bytes.
func pipe(dst, src net.Conn, dead *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF || !dead.Load() {
				dst.Close()
			}
			return
		}
	}
}

// Blackhole silences every connection open now.
func (p *proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.dead {
		d.Store(true)
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
