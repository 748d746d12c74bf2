package main

import (
	"bufio"
	"fmt"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/poolctl/poolctl/queue"
	"github.com/poolctl/poolctl/worker"
	"github.com/redis/go-redis/v9"
)

var noop = []byte(`{"class":"Poolctl::Noop","args":[]}`)

// drain: n idle built-in workers; DrainJobs Noop jobs are enqueued at
// once; jobs/s from the first processed job to the last.
func drain(e *env, z sizes, n int) ([]metric, error) {
	m, _, err := e.startMaster(e.config(map[string]int{"drain": n}, []string{"drain"}, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(n, true, 30*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	total := z.DrainJobs
	payloads := make([][]byte, total)
	for i := range payloads {
		payloads[i] = noop
	}
	type obs struct {
		t time.Time
		p int64
	}
	first, last := make(chan obs, 1), make(chan obs, 1)
	stop := make(chan struct{})
	go func() {
		var seen bool
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			p, _ := e.rdb.Get(bg, "resque:stat:processed").Int64()
			now := time.Now()
			if p > 0 && !seen {
				seen = true
				first <- obs{now, p}
			}
			if p >= int64(total) {
				last <- obs{now, p}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer close(stop)
	if err := queue.New(e.rdb, "").Enqueue(bg, "drain", payloads...); err != nil {
		return nil, err
	}
	var a, b obs
	select {
	case a = <-first:
	case <-time.After(time.Minute):
		return nil, m.failure("no job processed")
	}
	select {
	case b = <-last:
	case <-time.After(5 * time.Minute):
		return nil, m.failure("queue not drained")
	}
	note := ""
	if f, _ := e.rdb.Get(bg, "resque:stat:failed").Int64(); f > 0 {
		note = fmt.Sprintf("%d jobs failed", f)
	}
	rate := float64(b.p-a.p) / b.t.Sub(a.t).Seconds()
	return []metric{{key: "drain_" + strconv.Itoa(n), value: rate, note: note}}, nil
}

// ceiling: one client pushes the busy worker's command mix straight at
// Redis, pipelined, exactly as queue.Client issues it: per batch of
// worker.DefaultBatch jobs, the in-batch acknowledgements (FinishAll's
// scripts, each moving the record on to the next job) and one
// AckReserveBatch (the batch's last ack and the next batch's reserve),
// in one pipeline. ceiling_single is the mix of a worker taking one job
// per round trip (AckReserve per job), for comparison.
func ceiling(e *env, z sizes, _ int) ([]metric, error) {
	batched, err := ceilingRun(e, z, worker.DefaultBatch)
	if err != nil {
		return nil, err
	}
	single, err := ceilingRun(e, z, 1)
	if err != nil {
		return nil, err
	}
	return []metric{{key: "ceiling", value: batched}, {key: "ceiling_single", value: single}}, nil
}

func ceilingRun(e *env, z sizes, batch int) (float64, error) {
	total := z.DrainJobs
	payloads := make([][]byte, total)
	for i := range payloads {
		payloads[i] = noop
	}
	q := queue.New(e.rdb, "")
	if err := e.flush(); err != nil { // the second mix starts from an empty Redis too
		return 0, err
	}
	if err := q.Enqueue(bg, "ceil", payloads...); err != nil {
		return 0, err
	}
	k := q.Keys()
	qs := []string{"ceil"}
	id := queue.WorkerID("benchhost", 1, qs)
	if err := q.LoadScripts(bg); err != nil {
		return 0, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr(), PoolSize: 1})
	defer rdb.Close()
	_ = rdb.Ping(bg).Err()
	tm := queue.Timing{Class: "Poolctl::Noop"}
	t0 := time.Now()
	first, err := q.Reserve(bg, id, qs, time.Now())
	if err != nil || first == nil {
		return 0, fmt.Errorf("ceiling: first reserve: %v %v", first, err)
	}
	if batch == 1 {
		const perPipe = 100
		for done := 0; done < total; {
			b := min(perPipe, total-done)
			now := time.Now()
			pipe := rdb.Pipeline()
			for j := 0; j < b; j++ {
				// Every payload is noop; the token of each job is the one
				// the previous script reserved it with.
				_, next := q.AckReserveCmd(bg, pipe, id, first, tm, qs, now)
				first = &queue.Job{Queue: first.Queue, Payload: first.Payload, Token: next}
			}
			if _, err := pipe.Exec(bg); err != nil && err != redis.Nil {
				return 0, fmt.Errorf("ceiling pipeline: %w", err)
			}
			done += b
		}
	} else {
		held := []*queue.Job{first}
		for len(held) > 0 {
			now := time.Now()
			pipe := rdb.Pipeline()
			var done []queue.Finished
			for i, j := range held[:len(held)-1] {
				done = append(done, queue.Finished{Job: j, Timing: tm, Next: held[i+1], At: now})
			}
			if err := q.FinishCmds(bg, pipe, id, done); err != nil {
				return 0, err
			}
			_, decode := q.AckReserveBatchCmd(bg, pipe, id, held[len(held)-1], tm, qs, batch, now)
			if _, err := pipe.Exec(bg); err != nil && err != redis.Nil {
				return 0, fmt.Errorf("ceiling pipeline: %w", err)
			}
			if held, err = decode(); err != nil {
				return 0, err
			}
		}
	}
	el := time.Since(t0)
	if p, _ := e.rdb.Get(bg, k.Processed()).Int64(); p != int64(total) {
		return 0, fmt.Errorf("ceiling: processed = %d, want %d", p, total)
	}
	return float64(total) / el.Seconds(), nil
}

// monitorEvent is one command seen by MONITOR, stamped by the server.
type monitorEvent struct {
	ts   float64 // seconds, server clock
	kind string  // push, record, ack, wait
}

// monitor streams MONITOR output and classifies the commands the pick-up
// measurement needs.
func monitor(addr, queueName string) (net.Conn, <-chan monitorEvent, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		c.Close()
		return nil, nil, err
	}
	ch := make(chan monitorEvent, 1024)
	pushKey := `"rpush" "resque:queue:` + strings.ToLower(queueName) + `"`
	go func() {
		defer close(ch)
		r := bufio.NewReaderSize(c, 1<<16)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasPrefix(line, "+") || len(line) < 3 {
				continue
			}
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				continue
			}
			ts, err := strconv.ParseFloat(line[1:sp], 64)
			if err != nil {
				continue
			}
			var kind string
			line = strings.ToLower(line) // go-redis sends lower-case command names
			switch {
			case strings.Contains(line, pushKey):
				kind = "push"
			case strings.Contains(line, `"set" "resque:worker:`) && !strings.Contains(line, `:started"`):
				kind = "record"
			case strings.HasSuffix(strings.TrimSpace(line), `"incr" "resque:stat:processed"`):
				kind = "ack"
			case strings.Contains(line, `"blmove"`):
				kind = "wait"
			default:
				continue
			}
			ch <- monitorEvent{ts, kind}
		}
	}()
	return c, ch, nil
}

// latency: one built-in worker idle in BLMOVE; one Noop job at a time.
// MONITOR's server timestamps give RPUSH → SET of the worker record (the
// worker holds the job; its handler is next) and RPUSH → INCR processed
// (the handler has run and the ack is being applied): the handler starts
// between the two. The ack-based figure is the one held to the target.
func latency(e *env, z sizes, _ int) ([]metric, error) {
	m, _, err := e.startMaster(e.config(map[string]int{"lat": 1}, []string{"lat"}, ""))
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if _, _, err := m.waitWorkers(1, true, 30*time.Second); err != nil {
		return nil, err
	}
	conn, events, err := monitor(e.srv.Addr(), "lat")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q := queue.New(e.rdb, "")
	rng := rand.New(rand.NewSource(1))
	next := func(want string, timeout time.Duration) (float64, error) {
		deadline := time.After(timeout)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return 0, fmt.Errorf("MONITOR connection closed")
				}
				if ev.kind == want {
					return ev.ts, nil
				}
			case <-deadline:
				return 0, fmt.Errorf("no %s seen by MONITOR", want)
			}
		}
	}
	if _, err := next("wait", 12*time.Second); err != nil {
		return nil, m.failure(err.Error())
	}
	var toAck, toRecord []float64
	for i := 0; i < z.LatSamples; i++ {
		time.Sleep(time.Duration(2+rng.Intn(8)) * time.Millisecond) // the worker sits in BLMOVE
		payload := fmt.Sprintf(`{"class":"Poolctl::Noop","args":[%d,%d]}`, i, time.Now().UnixNano())
		if err := q.Enqueue(bg, "lat", []byte(payload)); err != nil {
			return nil, err
		}
		push, err := next("push", 5*time.Second)
		if err != nil {
			return nil, err
		}
		rec, err := next("record", 5*time.Second)
		if err != nil {
			return nil, m.failure(err.Error())
		}
		ack, err := next("ack", 5*time.Second)
		if err != nil {
			return nil, m.failure(err.Error())
		}
		if _, err := next("wait", 5*time.Second); err != nil {
			return nil, m.failure(err.Error())
		}
		toRecord = append(toRecord, (rec-push)*1000)
		toAck = append(toAck, (ack-push)*1000)
	}
	return []metric{
		{key: "latency_p50", value: percentile(toAck, 50)},
		{key: "latency_p99", value: percentile(toAck, 99)},
		{key: "latency_record_p50", value: percentile(toRecord, 50)},
		{key: "latency_record_p99", value: percentile(toRecord, 99)},
	}, nil
}
