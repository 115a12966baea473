package storage

import (
	"io"
	"log/slog"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Defaults for zero Options fields.
const (
	DefaultSegmentBytes       = 128 << 20
	DefaultIndexIntervalBytes = 4 << 10
	DefaultCacheBytes         = 4 << 20
	DefaultPreallocateBytes   = 4 << 20
	// maxSegmentBytes bounds SegmentBytes: positions in index files are
	// 32-bit.
	maxSegmentBytes = 1<<31 - 1
)

// Options configure a Log. The zero value is usable.
type Options struct {
	FS                 FS            // nil = the OS filesystem; tests inject faults
	SegmentBytes       int64         // roll when a segment reaches this size (default 128 MiB)
	SegmentAge         time.Duration // roll the active segment when older (0 = never)
	IndexIntervalBytes int           // sparse offset/time index granularity (default 4 KiB)
	CacheBytes         int64         // bounded cache of recent entries for Entries() (default 4 MiB; <0 = none)
	Syncer             *SyncGroup    // group commit shared by all logs of a node; nil = private
	Logger             *slog.Logger
	Now                func() time.Time

	// PreallocateBytes reserves the active segment's disk blocks this far
	// ahead of its end with fallocate(2), where the FS supports it (default
	// 4 MiB; <0 = none). The file then extends past its frames with zeros
	// until the segment rolls or the log closes.
	PreallocateBytes int64

	// RetainData lets Append keep each entry's Data in the cache as it
	// is, instead of a copy. The caller must then never modify Data after
	// Append: raft's entries are not (raft and its storage share them
	// too), which saves a copy of every byte appended.
	RetainData bool
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes > maxSegmentBytes {
		o.SegmentBytes = maxSegmentBytes
	}
	if o.IndexIntervalBytes <= 0 {
		o.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if o.PreallocateBytes == 0 {
		o.PreallocateBytes = DefaultPreallocateBytes
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Entry is one Raft log entry as stored. Records > 0 only for record
// batches: the entry then takes Records consecutive offsets.
type Entry struct {
	Index, Term  uint64
	Type         raftpb.EntryType
	Records      uint32 // offsets this entry takes: >0 only for record batches
	MaxTimestamp int64  // unix ms, for the time index (record batches)
	Data         []byte
}

// Batch is a stored record batch returned by Read. Data aliases a buffer
// owned by the caller after return (one copy from the file).
type Batch struct {
	BaseOffset   uint64
	Records      uint32
	Index, Term  uint64
	MaxTimestamp int64
	Data         []byte
}

// NextOffset is the offset after the batch.
func (b *Batch) NextOffset() uint64 { return b.BaseOffset + uint64(b.Records) }
