package stats

import (
	"encoding/json"
	"fmt"
	"os"

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

// ReadFile reads the sample a master published at path.
func ReadFile(path string) (*Sample, error) {
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
