package replication

import (
	"fmt"
	"sync"
	"testing"
)

// Batches proposed with ProposeInline from several goroutines, mixed with
// Propose, each land once, at the offset their answer reports, on one
// voter (the caller runs the pass and the sync) and on three (it runs the
// leader's part, the followers answer through the scheduler).
func TestProposeInline(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			c := newTestCluster(t, nodes, false)
			c.open(1)
			_, p := c.leader(1)
			ctx := testCtx(t)
			const writers, per = 4, 50
			var mu sync.Mutex
			at := map[uint64]string{}
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						b := testBatch(w*1000 + i)
						propose := p.ProposeInline
						if (w+i)%3 == 0 {
							propose = p.Propose
						}
						f, err := propose(ctx, b, AcksAll)
						if err != nil {
							errs <- err
							return
						}
						res, err := f.Wait(ctx)
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						at[res.BaseOffset] = string(b.Data)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			bs := readAll(t, p)
			if len(bs) != writers*per || len(at) != writers*per {
				t.Fatalf("read %d batches, %d distinct answers, want %d", len(bs), len(at), writers*per)
			}
			for _, b := range bs {
				if want, ok := at[b.BaseOffset]; !ok || want != string(b.Data) {
					t.Fatalf("offset %d holds %q, answered %q", b.BaseOffset, b.Data, want)
				}
			}
		})
	}
}
