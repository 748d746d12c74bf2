package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
)

// WriteFile atomically replaces path (the runtime directory's sample file)
// with s.
func WriteFile(path string, s *Sample) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode sample: %w", err)
	}
	return poolfs.WriteFileAtomic(path, append(data, '\n'))
}

// wantedSuffix names the marker file beside the sample file that readers
// touch: the master writes sample.json only while someone read it within
// WantedFor, so a pool nobody watches pays nothing for publishing (its
// figures still exist in the master, for /metrics).
const wantedSuffix = ".wanted"

// WantedFor is how long one read keeps the master publishing.
const WantedFor = 30 * time.Second

// Want tells the master that path's sample is being read, so it keeps
// publishing it. ReadFile calls it.
func Want(path string) {
	now := time.Now()
	if err := os.Chtimes(path+wantedSuffix, now, now); errors.Is(err, os.ErrNotExist) {
		_ = poolfs.WriteFileAtomic(path+wantedSuffix, nil)
	}
}

// wanted reports whether a reader asked for path's sample lately.
func wanted(path string, now time.Time) bool {
	fi, err := os.Stat(path + wantedSuffix)
	return err == nil && now.Sub(fi.ModTime()) < WantedFor
}

// ReadFile reads the sample a master published at path (and asks it to
// keep publishing: see Want). A master that was not publishing starts
// within one sample interval, so a first read may find no sample or an
// old one: callers look at TS.
func ReadFile(path string) (*Sample, error) {
	Want(path)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sample: %w", err)
	}
	var s Sample
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode sample %s: %w", path, err)
	}
	return &s, nil
}
