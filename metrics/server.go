// Package metrics serves the master's figures to Prometheus: /metrics,
// built at scrape time from the sampler's latest sample and the pool's
// state (nothing here polls or samples), and /healthz.
//
// Metrics are named by Prometheus conventions: the poolctl_ prefix, base
// units (seconds, bytes, ratios), _total counters. Labels are bounded by
// the configuration and the queues and job classes the pool serves:
// queues (a queue list), queue, class and state; never a pid or a job id.
// The master's own process and Go runtime figures come from
// client_golang's standard collectors. Every server has a private
// registry.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/spec"
)

// StaleAfter is how many sampling intervals old the latest sample may be
// before /healthz reports the master unhealthy.
const StaleAfter = 3

// shutdownTimeout bounds how long Close waits for scrapes in progress.
const shutdownTimeout = time.Second

// Server serves /metrics and /healthz on one address.
type Server struct {
	src  Source
	ln   net.Listener
	http *http.Server
	now  func() time.Time
	logf func(format string, args ...any)

	done      chan struct{} // closed when Serve has returned
	closeOnce sync.Once
	closeErr  error
}

// Option configures a Server.
type Option func(*Server)

// WithLogf reports scrape errors (a metric that could not be built) and
// the HTTP server's own errors through logf.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(s *Server) { s.logf = logf }
}

// NewServer listens on addr (HOST:PORT, or :PORT for loopback only; see
// spec.MetricsListenAddr) at once, so that a bad or taken address is an
// error here, and serves src's figures until Close.
func NewServer(addr string, src Source, opts ...Option) (*Server, error) {
	listen, err := spec.MetricsListenAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s := &Server{src: src, now: time.Now, logf: func(string, ...any) {}, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		newCollector(src),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register collector: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            logfLogger{s},
		ErrorHandling:       promhttp.ContinueOnError, // serve what can be built
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "poolctl master: /metrics (Prometheus), /healthz\n")
	})

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err // the address is said once, below
		}
		return nil, fmt.Errorf("metrics: cannot listen on %s: %w", listen, err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          log.New(logfWriter{s}, "", 0),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logf("metrics: %v", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on, with the port the system
// chose when port 0 was asked.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: scrapes in progress get a moment to finish,
// then every connection is closed. It returns once the server's
// goroutines are gone, and may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			// A scrape outlived the grace period: drop it.
			s.closeErr = s.http.Close()
		}
		<-s.done
	})
	return s.closeErr
}

// healthz answers 200 "ok" while the master runs and samples, else 503
// with the reason.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	reason := s.unhealthy()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ok")
}

// unhealthy says why the master is not healthy, "" when it is.
func (s *Server) unhealthy() string {
	sample, st := s.src.Latest()
	switch {
	case st == nil:
		return "the master has published no state yet"
	case st.Status == poolfs.MasterStopping:
		return "the master is stopping"
	case sample == nil:
		return "no sample yet"
	}
	interval := time.Duration(sample.Interval * float64(time.Second))
	if interval <= 0 {
		interval = spec.DefaultSampleInterval
	}
	if age := s.now().Sub(sample.TS); age > StaleAfter*interval {
		return fmt.Sprintf("the latest sample is %s old (sampling every %s): the sampler is stalled",
			age.Round(time.Millisecond), interval)
	}
	return ""
}

// logfLogger adapts logf to promhttp.Logger.
type logfLogger struct{ s *Server }

func (l logfLogger) Println(v ...any) {
	l.s.logf("metrics: %s", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// logfWriter adapts logf to the HTTP server's log.Logger.
type logfWriter struct{ s *Server }

func (l logfWriter) Write(p []byte) (int, error) {
	l.s.logf("metrics: %s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
