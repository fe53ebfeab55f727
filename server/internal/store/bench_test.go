package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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

// BenchmarkAddUpdateGroup stores small accepted updates (an mlp:32 int8
// update is about 26 KB) one at a time, and from 64 goroutines at once as
// sessions do: concurrent writes share group commits, so they are not
// capped at one fsync each.
func BenchmarkAddUpdateGroup(b *testing.B) {
	for _, c := range []struct{ size, writers int }{{26 << 10, 1}, {26 << 10, 64}, {32, 64}, {200 << 10, 64}} {
		size, writers := c.size, c.writers
		b.Run(fmt.Sprintf("bytes=%d/writers=%d", size, writers), func(b *testing.B) {
			ctx := context.Background()
			s := openPath(b, tempDB(b))
			mustRun(b, s, "r")
			mustOpenRound(b, s, "r", 1)
			payload := blob(1, size)
			b.SetBytes(int64(size))
			var n atomic.Int64
			work := make(chan struct{})
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for range work {
						u := Update{RunID: "r", Round: 1, ClientID: fmt.Sprint("c", n.Add(1)), Accepted: true,
							Bytes: size, Codec: CodecFloat32, Blob: payload}
						if _, err := s.AddUpdate(ctx, &u); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for b.Loop() {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
		})
	}
}

// BenchmarkCommitRound commits a round of 1,000 accepted updates of 187 KB
// (mnist-2nn, int8+zstd), as a 1,000-client run does every round: a
// 200k-parameter model, one verdict per update, the telemetry of every
// client and the round's payload file settled, in one durable write. Its
// latency is part of the round's close, during which no client trains.
func BenchmarkCommitRound(b *testing.B) {
	const clients, params, size = 1000, 200_000, 187 << 10
	ctx := context.Background()
	s := openPath(b, tempDB(b))
	mustRun(b, s, "r")
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%04d", i)
	}
	mustClients(b, s, "r", ids...)
	payload := blob(1, size)
	w := make([]float32, params)
	for i := range w {
		w[i] = float32(i%977) * 1e-3
	}
	weights := EncodeFloat32s(nil, w)
	round := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		round++
		mustOpenRound(b, s, "r", round)
		verdicts := make([]Verdict, clients)
		stats := make([]ClientStats, clients)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				u := Update{RunID: "r", Round: round, ClientID: id, Accepted: true, Bytes: size,
					Codec: CodecFloat32, Blob: payload}
				uid, err := s.AddUpdate(ctx, &u)
				if err != nil {
					b.Error(err)
				}
				verdicts[i] = Verdict{UpdateID: uid, Score: 1, Cosine: 0.5, NormRatio: 1}
				stats[i] = ClientStats{ID: id, Updates: round, Accepted: round, BytesUp: int64(round * size)}
			})
		}
		wg.Wait()
		b.StartTimer()
		err := s.Do(ctx, "commit_round", func(t *Tx) error {
			return t.CommitRound(&Commit{RunID: "r", Round: round, TestAccuracy: 0.9, TestLoss: 0.3,
				Model:    Model{Version: round, Params: params, Codec: CodecFloat32, Weights: weights},
				Verdicts: verdicts, Clients: stats, KeepModels: 2})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
