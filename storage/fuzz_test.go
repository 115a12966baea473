package storage

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// Fuzz targets for every decoder of bytes read from disk. Run one with
// go test -run=^$ -fuzz=FuzzFrame -fuzztime=10s ./storage/

func FuzzFrame(f *testing.F) {
	for _, e := range []Entry{
		{Index: 1, Term: 1},
		{Index: 7, Term: 3, Type: raftpb.EntryConfChangeV2, Data: []byte("cc")},
		{Index: 1 << 40, Term: 9, Records: 5, MaxTimestamp: -1, Data: bytes.Repeat([]byte{7}, 100)},
	} {
		f.Add(appendFrame(nil, &e))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, data, n, err := decodeFrame(b)
		if err != nil {
			return
		}
		if n > len(b) || len(data) != m.DataLen {
			t.Fatalf("size %d of %d, data %d vs %d", n, len(b), len(data), m.DataLen)
		}
		e := Entry{Index: m.Index, Term: m.Term, Type: m.Type, Records: m.Records, MaxTimestamp: m.MaxTimestamp, Data: data}
		if re := appendFrame(nil, &e); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs")
		}
		mm, err := decodeFrameMeta(b)
		if err != nil || mm != m {
			t.Fatalf("meta %+v %v, want %+v", mm, err, m)
		}
	})
}

func FuzzSegmentHeader(f *testing.F) {
	h := segHeader{BaseIndex: 5, PrevTerm: 2, BaseOffset: 99, Created: 1700000000000}
	f.Add(h.encode())
	f.Add(make([]byte, segHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeSegHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.encode(), b[:segHeaderSize]) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzIndexEntry(f *testing.F) {
	f.Add(appendIdxEntry(nil, idxEntry{A: 10, B: 3, Pos: 48}))
	f.Add(appendIdxEntry(appendIdxEntry(nil, idxEntry{A: 1, B: 1, Pos: 48}), idxEntry{A: 0, B: 1, Pos: 40}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeIdxEntry(b); err == nil {
			if !bytes.Equal(appendIdxEntry(nil, e), b[:indexEntrySize]) {
				t.Fatal("re-encoding differs")
			}
		}
		// Whole index files: validation never panics and accepts only
		// well-formed ones.
		mf := &memFile{b: b}
		for _, ti := range []bool{false, true} {
			n, err := validateIndexFile(mf, "x", 1<<20, ti)
			if err == nil && n*indexEntrySize != int64(len(b)) {
				t.Fatalf("validated %d entries of %d bytes", n, len(b))
			}
		}
	})
}

// FuzzState covers the state file, snapshot files and the recovery point.
func FuzzState(f *testing.F) {
	st := &persistedState{HasHardState: true, StartOffset: 3, SnapIndex: 9, SnapTerm: 2, SnapNext: 40}
	st.HardState = raftpb.HardState{Term: new(uint64(2)), Vote: new(uint64(1)), Commit: new(uint64(9))}
	st.ConfState = raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	b, err := st.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	snap, err := encodeSnap(4, 1, &raftpb.ConfState{Voters: []uint64{1, 2}}, []byte("data"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snap)
	f.Add((&recoveryPoint{Base: 1, Pos: 48, LastIndex: 0, Next: 5, MaxTs: noTimestamp}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := decodeState(b); err == nil {
			re, err := s.encode()
			if err != nil {
				t.Fatal(err)
			}
			s2, err := decodeState(re)
			if err != nil || s2.StartOffset != s.StartOffset || s2.SnapIndex != s.SnapIndex || s2.HardState.GetCommit() != s.HardState.GetCommit() {
				t.Fatalf("round trip: %v", err)
			}
		}
		if r, err := decodeRecovery(b); err == nil && !bytes.Equal(r.encode(), b[:recoverySize]) {
			t.Fatal("recovery point re-encoding differs")
		}
		if i, tm, cs, data, err := decodeSnap(b); err == nil {
			re, err := encodeSnap(i, tm, cs, data)
			if err != nil {
				t.Fatal(err)
			}
			i2, tm2, cs2, data2, err := decodeSnap(re)
			if err != nil || i2 != i || tm2 != tm || !proto.Equal(cs2, cs) || !bytes.Equal(data2, data) {
				t.Fatalf("snapshot round trip: %v", err)
			}
		}
	})
}

// FuzzRecover opens a log whose active segment holds arbitrary bytes after
// a valid header: recovery must keep exactly the valid frame prefix and
// the log must then work.
func FuzzRecover(f *testing.F) {
	var seed []byte
	for i := uint64(1); i <= 3; i++ {
		e := Entry{Index: i, Term: 1, Records: 1, MaxTimestamp: int64(i), Data: []byte("abc")}
		seed = appendFrame(seed, &e)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-2])
	f.Fuzz(func(t *testing.T, tail []byte) {
		fs := faultfs.New()
		fs.MkdirAll("/r", 0o755)
		h := segHeader{BaseIndex: 1}
		fs.WriteFile(segPathIn("/r", 1)+segSuffix, append(h.encode(), tail...))
		l, err := Open("/r", Options{FS: fs, IndexIntervalBytes: 16})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		last, _ := l.LastIndex()
		if last > 0 {
			ents, err := l.Entries(1, last+1, 1<<30)
			if err != nil || uint64(len(ents)) != last {
				t.Fatalf("entries: %d %v", len(ents), err)
			}
		}
		if _, err := l.Read(0, l.NextOffset(), 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := l.Append([]Entry{{Index: last + 1, Term: 1 << 60, Records: 1, Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzRecoveryPoint opens a log whose recovery file holds arbitrary bytes
// (seeded with true and false points): whatever the record says, Open must
// end with exactly the log's valid frames.
func FuzzRecoveryPoint(f *testing.F) {
	var frames []byte
	var ends []uint64
	for i := uint64(1); i <= 4; i++ {
		e := Entry{Index: i, Term: 2, Records: 1, MaxTimestamp: int64(i), Data: []byte("abcdef")}
		frames = appendFrame(frames, &e)
		ends = append(ends, uint64(segHeaderSize+len(frames)))
	}
	good := recoveryPoint{Base: 1, Pos: ends[2], LastIndex: 3, LastTerm: 2, Next: 3, MaxTs: 3, LastFrame: ends[1]}
	f.Add(good.encode())
	bad := good
	bad.Pos, bad.LastFrame = ends[3]+5, ends[3]
	f.Add(bad.encode())
	f.Add([]byte("SLRP"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		fs := faultfs.New()
		fs.MkdirAll("/p", 0o755)
		h := segHeader{BaseIndex: 1, PrevTerm: 1}
		fs.WriteFile(segPathIn("/p", 1)+segSuffix, append(h.encode(), frames...))
		fs.WriteFile("/p/"+recoveryFile, rec)
		l, err := Open("/p", Options{FS: fs, IndexIntervalBytes: 16})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if last, _ := l.LastIndex(); last != 4 || l.NextOffset() != 4 {
			t.Fatalf("last %d next %d, want 4 4", last, l.NextOffset())
		}
		if ents, err := l.Entries(1, 5, 1<<20); err != nil || len(ents) != 4 {
			t.Fatalf("entries: %d %v", len(ents), err)
		}
	})
}

// memFile is a read-only File over a byte slice.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, errShortFrame
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, errShortFrame
	}
	return n, nil
}
func (m *memFile) WriteAt([]byte, int64) (int, error) { return 0, errShortFrame }
func (m *memFile) Close() error                       { return nil }
func (m *memFile) Truncate(int64) error               { return errShortFrame }
func (m *memFile) Sync() error                        { return nil }
func (m *memFile) Size() (int64, error)               { return int64(len(m.b)), nil }
