package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// model is the obvious in-memory log the randomized test compares against.
// It keeps the whole history from index 1 (suffix overwrites excepted), so
// that after a crash it can accept segments that retention had unlinked
// but the directory never made durable.
type model struct {
	ents       []Entry // entries 1..last
	first      uint64  // first index
	start      uint64  // start offset
	dstart     uint64  // start offset made durable by DeleteBefore
	snap       uint64
	syncedLast uint64 // last index as of the last Sync
	trunced    bool   // a suffix truncation since the last Sync
}

func (m *model) last() uint64 { return uint64(len(m.ents)) }

// live are the entries first..last.
func (m *model) live() []Entry { return m.ents[m.first-1:] }

func (m *model) offsetAt(i uint64) uint64 {
	var o uint64
	for _, e := range m.ents[:i-1] {
		o += uint64(e.Records)
	}
	return o
}

func (m *model) base() uint64 { return m.offsetAt(m.first) }
func (m *model) next() uint64 { return m.offsetAt(m.last() + 1) }

func (m *model) term(i uint64) uint64 {
	if i == 0 {
		return 0
	}
	return m.ents[i-1].Term
}

func (m *model) append(ents []Entry) {
	if ents[0].Index <= m.last() {
		m.trunced = true
		m.syncedLast = min(m.syncedLast, ents[0].Index-1)
	}
	m.ents = append(m.ents[:ents[0].Index-1:ents[0].Index-1], ents...)
}

// read is the expected Read result.
func (m *model) read(offset, maxOffset uint64, maxBytes int) []Batch {
	var out []Batch
	o := m.base()
	limit := min(maxOffset, m.next())
	if offset >= limit {
		return nil
	}
	for _, e := range m.live() {
		if e.Records == 0 {
			continue
		}
		base := o
		o += uint64(e.Records)
		if o <= offset {
			continue
		}
		if base >= limit || (len(out) > 0 && len(e.Data) > maxBytes) {
			break
		}
		maxBytes -= len(e.Data)
		out = append(out, Batch{BaseOffset: base, Records: e.Records, Index: e.Index, Term: e.Term, MaxTimestamp: e.MaxTimestamp, Data: e.Data})
	}
	return out
}

func (m *model) offsetForTime(ts int64) (uint64, bool) {
	o := m.base()
	for _, e := range m.live() {
		if e.Records > 0 && e.MaxTimestamp >= ts {
			return max(o, m.start), true
		}
		o += uint64(e.Records)
	}
	return 0, false
}

type syncMode int

const (
	syncInline syncMode = iota
	syncGroup
	syncConcurrent // Sync from several goroutines at once through a group
	syncShared     // Sync together with a peer log of the same filesystem: cycles flush both with one syncfs
)

func (s syncMode) String() string {
	return [...]string{"inline", "group", "concurrent", "syncfs"}[s]
}

// TestRandomizedAgainstModel runs the same random operations under several
// segment sizes and sync modes and demands the model's answers.
// STORAGE_SOAK=1 runs many more seeds and steps and checks the on-disk
// invariants after every step (STORAGE_INVARIANTS=1 alone does the latter).
func TestRandomizedAgainstModel(t *testing.T) {
	seeds, steps := 3, 400
	if os.Getenv("STORAGE_SOAK") != "" {
		seeds, steps = 40, 3000
	}
	if s := os.Getenv("STORAGE_SEED"); s != "" {
		v, _ := strconv.Atoi(s)
		seeds = v + 1
	}
	for seed := 0; seed < seeds; seed++ {
		for _, segBytes := range []int64{1, 300, 4096, 1 << 20} {
			for _, mode := range []syncMode{syncInline, syncGroup, syncConcurrent, syncShared} {
				t.Run(fmt.Sprintf("seed=%d/seg=%d/%v", seed, segBytes, mode), func(t *testing.T) {
					runModel(t, uint64(seed), segBytes, mode, steps)
				})
			}
		}
	}
}

func runModel(t *testing.T, seed uint64, segBytes int64, mode syncMode, steps int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	defer func(v uint64) { recoverySyncBytes = v }(recoverySyncBytes)
	recoverySyncBytes = uint64(1 + rng.IntN(2000))
	defer func(v uint64) { recoveryWriteBytes = v }(recoveryWriteBytes)
	recoveryWriteBytes = 1 + seed*977%3000
	defer func(v int64) { indexWriteBytes = v }(indexWriteBytes)
	indexWriteBytes = int64(1 + rng.IntN(5000))
	fs := faultfs.New()
	var g *SyncGroup
	if mode != syncInline {
		g = NewSyncGroup()
		defer g.Close()
	}
	opts := Options{FS: fs, SegmentBytes: segBytes, IndexIntervalBytes: 1 + rng.IntN(200), CacheBytes: int64(rng.IntN(3000)) - 500, Syncer: g}
	opts.PreallocateBytes = [...]int64{-1, 700, 64 << 10}[seed%3] // none, less than a frame or two, many frames
	opts.RetainData = seed%4 >= 2                                 // the cache keeps the appended bytes (nothing here modifies them)
	// Odd seeds: files that write zeros, so logs that flush small write zeros
	// ahead (prealloc.go) where preallocation is on.
	zeros := seed%2 == 1
	if zeros {
		defer func(n int) { zeroAheadAfter = n }(zeroAheadAfter)
		zeroAheadAfter = 1 + rng.IntN(2)
	}
	withZeros := func(fs *faultfs.FS) FS {
		if zeros {
			return zeroFS{fs}
		}
		return fs
	}
	opts.FS = withZeros(fs)
	l := mustOpen(t, "/m", opts)
	defer func() { l.Close() }()
	var peer *Log // syncShared: another log of the filesystem, syncing with l
	if mode == syncShared {
		peer = mustOpen(t, "/peer", opts)
		defer func() { peer.Close() }()
		defer func() { t.Logf("group stats %+v", g.Stats()) }()
	}
	m := &model{first: 1}
	term := uint64(1)
	var ts int64 = 1000

	doSync := func() {
		t.Helper()
		if mode == syncShared {
			i := must[uint64](t)(peer.LastIndex()) + 1
			mustAppend(t, peer, batchEntry(i, 1, 1, int64(i), 20))
			for _, err := range syncTogether(g, l, peer) {
				if err != nil {
					t.Fatal(err)
				}
			}
		} else if mode == syncConcurrent {
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() { errs <- l.Sync() })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		} else if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		m.syncedLast, m.trunced = m.last(), false
	}

	readBuf := make([]byte, (seed*613)%4000)
	var readDst []Batch
	trace := os.Getenv("STORAGE_TRACE") != ""
	invariants := os.Getenv("STORAGE_SOAK") != "" || os.Getenv("STORAGE_INVARIANTS") != ""
	for step := 0; step < steps; step++ {
		op := rng.IntN(100)
		if trace {
			t.Logf("step %d op %d first %d last %d next %d start %d snap %d", step, op, m.first, m.last(), m.next(), m.start, m.snap)
		}
		switch {
		case op < 40: // append, sometimes overwriting a suffix
			at := m.last() + 1
			if rng.IntN(5) == 0 && len(m.live()) > 0 {
				at = m.first + uint64(rng.IntN(len(m.live())))
				if at <= m.snap || m.offsetAt(at) < m.start { // never overwrite what is applied
					at = m.last() + 1
				}
				term++
			}
			if rng.IntN(10) == 0 {
				term++
			}
			var es []Entry
			for i := range 1 + rng.IntN(6) {
				e := Entry{Index: at + uint64(i), Term: term}
				switch rng.IntN(4) {
				case 0: // empty leader entry
				case 1:
					e.Type = raftpb.EntryConfChange
					e.Data = payload(uint64(step), 5+rng.IntN(30))
				default:
					ts += int64(rng.IntN(100)) - 30
					e.Records, e.MaxTimestamp = uint32(1+rng.IntN(5)), ts
					e.Data = payload(uint64(step*10+i), 1+rng.IntN(400))
				}
				es = append(es, e)
			}
			mustAppend(t, l, es...)
			m.append(es)
		case op < 50:
			doSync()
		case op < 62: // Read
			next := m.next()
			off := m.start + uint64(rng.Int64N(int64(next-m.start+1)))
			maxOff := off + uint64(rng.IntN(20))
			maxBytes := rng.IntN(1500)
			got, err := l.Read(off, maxOff, maxBytes)
			if step%2 == 1 { // the same through ReadInto and reused memory, sometimes too small
				got, err = l.ReadInto(readDst, readBuf, off, maxOff, maxBytes)
				readDst = got
			}
			if err != nil {
				t.Fatalf("step %d: Read(%d, %d, %d): %v", step, off, maxOff, maxBytes, err)
			}
			want := m.read(off, maxOff, maxBytes)
			if len(got) != len(want) {
				t.Fatalf("step %d: Read(%d, %d, %d): %d batches, want %d", step, off, maxOff, maxBytes, len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.BaseOffset != w.BaseOffset || g.Records != w.Records || g.Index != w.Index || g.Term != w.Term || g.MaxTimestamp != w.MaxTimestamp || !bytes.Equal(g.Data, w.Data) {
					t.Fatalf("step %d: Read(%d): batch %d = %+v, want %+v", step, off, i, g.BaseOffset, w.BaseOffset)
				}
			}
			if _, err := l.Read(m.next()+1, m.next()+5, 10); !isRange(err) {
				t.Fatalf("read past the end: %v", err)
			}
			if m.start > 0 {
				if _, err := l.Read(m.start-1, m.next(), 10); !isRange(err) {
					t.Fatalf("read below the start: %v", err)
				}
			}
		case op < 72: // Entries, Term, OffsetAt
			if len(m.live()) == 0 {
				continue
			}
			lo := m.first + uint64(rng.IntN(len(m.live())))
			hi := lo + uint64(rng.IntN(int(m.last()-lo)+2))
			maxSize := uint64(rng.IntN(2000))
			got, err := l.Entries(lo, hi, maxSize)
			if err != nil {
				t.Fatalf("step %d: Entries(%d, %d): %v", step, lo, hi, err)
			}
			var size uint64
			n := 0
			for i := lo; i < hi; i++ {
				e := m.ents[i-1]
				size += pbSize(e.Index, e.Term, e.Type, len(e.Data))
				if n > 0 && size > maxSize {
					break
				}
				n++
			}
			if len(got) != n {
				t.Fatalf("step %d: Entries(%d, %d, %d): %d entries, want %d", step, lo, hi, maxSize, len(got), n)
			}
			for k, e := range got {
				w := m.ents[lo-1+uint64(k)]
				if e.GetIndex() != w.Index || e.GetTerm() != w.Term || e.GetType() != w.Type || !bytes.Equal(e.GetData(), w.Data) {
					t.Fatalf("step %d: entry %d differs", step, w.Index)
				}
			}
			i := m.first - 1 + uint64(rng.IntN(len(m.live())+1))
			if tm, err := l.Term(i); err != nil || tm != m.term(i) {
				t.Fatalf("step %d: Term(%d) = %d %v, want %d", step, i, tm, err, m.term(i))
			}
			i = m.first + uint64(rng.IntN(len(m.live())+1))
			if o, err := l.OffsetAt(i); err != nil || o != m.offsetAt(i) {
				t.Fatalf("step %d: OffsetAt(%d) = %d %v, want %d", step, i, o, err, m.offsetAt(i))
			}
		case op < 76: // OffsetForTime
			q := ts - int64(rng.IntN(3000)) + 50
			o, ok, err := l.OffsetForTime(q)
			wo, wok := m.offsetForTime(q)
			if err != nil || ok != wok || o != wo {
				t.Fatalf("step %d: OffsetForTime(%d) = %d %v %v, want %d %v", step, q, o, ok, err, wo, wok)
			}
		case op < 80: // snapshot
			if m.syncedLast < m.first { // raft applies only durable entries
				continue
			}
			i := m.first + uint64(rng.IntN(int(m.syncedLast-m.first+1)))
			if b := l.SegmentBaseAfter(i - 1); rng.IntN(2) == 0 && b != 0 && b-1 <= m.syncedLast {
				i = b - 1 // at a segment's end, where retention may cut
			}
			err := l.CreateSnapshot(i, nil, []byte("s"))
			if i <= m.snap {
				if !errors.Is(err, raft.ErrSnapOutOfDate) {
					t.Fatalf("step %d: old snapshot: %v", step, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d: CreateSnapshot(%d): %v", step, i, err)
			}
			m.snap = i
		case op < 85: // retention by size
			safe := m.first + uint64(rng.IntN(len(m.live())+1))
			if _, err := l.ApplyRetention(safe, 0, int64(rng.IntN(3000))); err != nil {
				t.Fatal(err)
			}
			first := must[uint64](t)(l.FirstIndex())
			if first < m.first || first > min(safe, m.snap)+1 {
				t.Fatalf("step %d: retention moved first %d -> %d (safe %d, snap %d)", step, m.first, first, safe, m.snap)
			}
			if first > m.first {
				// The log starts right after the snapshot raft sends.
				if snap := must[*raftpb.Snapshot](t)(l.StartSnapshot()); snap.GetMetadata().GetIndex() != first-1 {
					t.Fatalf("step %d: first index %d, StartSnapshot at %d", step, first, snap.GetMetadata().GetIndex())
				}
			}
			m.first = first
			m.start = max(m.start, m.base())
		case op < 88: // DeleteRecords
			hw := m.offsetAt(max(m.syncedLast, m.first-1) + 1) // a high watermark
			if hw < m.start {
				continue
			}
			off := m.start + uint64(rng.Int64N(int64(hw-m.start+1)))
			if err := l.DeleteBefore(off, m.last()); err != nil {
				t.Fatal(err)
			}
			m.start = max(m.start, off)
			m.dstart = max(m.dstart, off)
			m.first = must[uint64](t)(l.FirstIndex())
			if got := l.StartOffset(); got != m.start {
				t.Fatalf("step %d: start %d, want %d", step, got, m.start)
			}
		case op < 94: // clean reopen
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, "/m", opts)
			m.syncedLast, m.trunced = m.last(), false
		default: // crash: unsynced bytes are lost
			if m.trunced {
				doSync()
			}
			fs = fs.Crash()
			l.Close() // syncs, but on the filesystem from before the crash
			opts.FS = withZeros(fs)
			l = mustOpen(t, "/m", opts)
			if peer != nil {
				peer.Close()
				peer = mustOpen(t, "/peer", opts)
			}
			// Synced entries survive; unsynced ones may (a roll syncs);
			// segments unlinked by retention may come back.
			last := must[uint64](t)(l.LastIndex())
			first := must[uint64](t)(l.FirstIndex())
			if last < m.syncedLast || last > m.last() || first > m.first {
				t.Fatalf("step %d: after crash first %d last %d, want first <= %d, last in [%d, %d]", step, first, last, m.first, m.syncedLast, m.last())
			}
			m.ents = m.ents[:last]
			m.first = first
			start := l.StartOffset()
			if start < m.dstart || start > m.start {
				t.Fatalf("step %d: after crash start %d, want in [%d, %d]", step, start, m.dstart, m.start)
			}
			m.start = start
			m.syncedLast, m.trunced = last, false
		}
		if invariants {
			checkInvariants(t, l, step)
		}
		if got := must[uint64](t)(l.LastIndex()); got != m.last() {
			t.Fatalf("step %d: last %d, want %d", step, got, m.last())
		}
		if got := must[uint64](t)(l.FirstIndex()); got != m.first {
			t.Fatalf("step %d: first %d, want %d", step, got, m.first)
		}
		if got := l.NextOffset(); got != m.next() {
			t.Fatalf("step %d: next offset %d, want %d", step, got, m.next())
		}
	}
}

func isRange(err error) bool {
	var re *OffsetOutOfRangeError
	return errors.As(err, &re)
}

// syncTogether queues syncs of logs in one flush cycle of g (as if they
// called Sync at the same instant) and waits for them.
func syncTogether(g *SyncGroup, logs ...*Log) []error {
	seqs := make([]uint64, len(logs))
	for i, l := range logs {
		l.mu.Lock()
		seqs[i] = l.mu.seq
		l.mu.Unlock()
	}
	g.mu.Lock()
	var w *cycleWait
	for _, l := range logs {
		w = g.enqueueLocked(l)
	}
	// Hand the cycle to the flusher, unless a cycle runs: its runner
	// hands the next one over. A flusher that leads but idles waits for
	// a kick.
	kick := g.mu.leader == runnerNone || g.mu.idle
	if g.mu.leader == runnerNone {
		g.mu.leader = runnerFlusher
	}
	g.mu.idle = false
	g.mu.Unlock()
	if kick {
		g.kickFlusher()
	}
	<-w.done
	errs := make([]error, len(logs))
	for i, l := range logs {
		if done, err := l.syncOutcome(seqs[i]); !done {
			errs[i] = l.Sync() // a directory fsync was still due
		} else {
			errs[i] = err
		}
	}
	return errs
}
