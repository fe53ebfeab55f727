package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAddUpdate stores accepted 800 KB updates (about a 200k-parameter
// float32 model) into a file database, each durable (fsynced) on return.
func BenchmarkAddUpdate(b *testing.B) {
	const size = 800 << 10
	ctx := context.Background()
	s := openPath(b, tempDB(b))
	mustRun(b, s, "r")
	mustOpenRound(b, s, "r", 1)
	payload := blob(1, size)
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := Update{RunID: "r", Round: 1, ClientID: fmt.Sprint("c", i), Accepted: true,
			Bytes: size, Codec: CodecFloat32, Blob: payload}
		if _, err := s.AddUpdate(ctx, &u); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
