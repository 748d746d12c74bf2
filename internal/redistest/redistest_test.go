package redistest

import (
	"context"
	"testing"
)

func TestStartRestartKeepsDataWithPersistence(t *testing.T) {
	s := Start(t, WithPersistence())
	if s.Addr() == "127.0.0.1:6379" {
		t.Fatal("test server must never use port 6379")
	}
	ctx := context.Background()
	rdb := s.Client()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	got, err := rdb.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart: got %q, %v; want \"v\"", got, err)
	}
}
