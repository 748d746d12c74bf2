package worker

import "testing"

// BenchmarkDecodePayload measures the per-job payload decode on the
// worker's hot path, for a typical small payload and a larger one.
func BenchmarkDecodePayload(b *testing.B) {
	cases := []struct {
		name    string
		payload []byte
	}{
		{"noop", []byte(`{"class":"Poolctl::Noop","args":[]}`)},
		{"args", []byte(`{"class":"Archive","args":[12345,"s3://bucket/some/key.tar.gz",{"retries":3,"tags":["a","b","c"]}],"queue":"high","id":"5f1c"}`)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.payload)))
			for b.Loop() {
				if _, err := DecodePayload(c.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
