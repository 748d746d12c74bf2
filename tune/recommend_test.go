package tune

import (
	"strings"
	"testing"
)

func TestRecommend(t *testing.T) {
	cases := []struct {
		name   string
		points []Point
		lim    Limits
		want   int
		reason string // a part of the reason
	}{
		{
			name:   "CPU-bound on 2 cores: 2 is within 5% of the best",
			points: pts(1, 190, 2, 380, 4, 392, 8, 370, 3, 385),
			want:   2, reason: "97% of 392 at 4 workers",
		},
		{
			name:   "sleep-bound: linear, the top is the best",
			points: pts(1, 20, 2, 40, 4, 80, 8, 160, 16, 318, 10, 199, 12, 239, 14, 279),
			want:   16, reason: "the best measured throughput",
		},
		{
			name:   "exactly 95% counts",
			points: pts(1, 50, 2, 95, 4, 100),
			want:   2,
		},
		{
			name:   "just under 95% does not",
			points: pts(1, 50, 2, 94.9, 4, 100),
			want:   4,
		},
		{
			name:   "order of the points does not matter",
			points: pts(8, 370, 3, 385, 1, 190, 4, 392, 2, 380),
			want:   2,
		},
		{
			name:   "max_workers with the pool's other workers",
			points: pts(1, 20, 2, 40, 4, 80, 8, 160, 16, 320),
			lim:    Limits{MaxWorkers: 12, OtherWorkers: 2},
			want:   8, reason: "16 workers with the pool's other 2 exceed max_workers 12",
		},
		{
			name:   "max_cpu rules out the saturated counts",
			points: []Point{{Workers: 1, Throughput: 190, CPUPercent: 55}, {Workers: 2, Throughput: 380, CPUPercent: 99}, {Workers: 4, Throughput: 392, CPUPercent: 100}},
			lim:    Limits{MaxCPU: 90},
			want:   1, reason: "host CPU 100% > max_cpu 90%",
		},
		{
			name:   "min_free_memory",
			points: []Point{{Workers: 1, Throughput: 10, MemFreeBytes: 2 << 30}, {Workers: 2, Throughput: 20, MemFreeBytes: 1 << 30}, {Workers: 4, Throughput: 40, MemFreeBytes: 100 << 20}},
			lim:    Limits{MinFreeMemory: 512 << 20},
			want:   2, reason: "free memory 100.0MiB < min_free_memory 512.0MiB",
		},
		{
			name:   "a point within 95% that keeps within the limits wins over the limited best",
			points: []Point{{Workers: 2, Throughput: 96, CPUPercent: 80}, {Workers: 4, Throughput: 100, CPUPercent: 95}},
			lim:    Limits{MaxCPU: 90},
			want:   2, reason: "fewest workers within 5%",
		},
		{
			name:   "nothing within the limits",
			points: pts(4, 10, 8, 20),
			lim:    Limits{MaxWorkers: 3},
			want:   0, reason: "no measured worker count keeps within the pool's limits",
		},
		{
			name:   "nothing finished",
			points: pts(1, 0, 2, 0),
			want:   0, reason: "no job finished",
		},
		{
			name: "nothing measured", want: 0, reason: "nothing was measured",
		},
	}
	for _, c := range cases {
		got := Recommend(c.points, c.lim)
		if got.Workers != c.want || !strings.Contains(got.Reason, c.reason) {
			t.Errorf("%s: %d (%s), want %d (…%s…)", c.name, got.Workers, got.Reason, c.want, c.reason)
		}
	}
}
