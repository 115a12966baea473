// Package storage owns a partition's log on disk. The segmented log is at
// once the Raft log, read by etcd-raft through raft.Storage (Log implements
// it directly), and the record log that fetches read: a record is written
// once. The package also translates Raft indexes to dense record offsets,
// commits the writes of many logs in shared fsyncs (SyncGroup), recovers
// after crashes and applies retention. It knows nothing of topics, gRPC or
// Raft transport; raftpb types appear only at the raft.Storage surface.
//
// # Entries, indexes and offsets
//
// Every Raft entry is stored, in index order. An entry with Records > 0 is
// a record batch and takes the next Records offsets; every other entry
// (Raft's empty leader entries, conf changes, control entries) takes none.
// The offset of an entry is therefore a pure function of the log prefix,
// identical on every replica, and stays right after a suffix truncation:
// truncating at index i resets the next offset to the offset of entry i.
//
// # Files
//
// A log directory holds:
//
//	00000000000000000001.log        segment, named by its first Raft index (20 digits)
//	00000000000000000001.index      sparse offset index of that segment
//	00000000000000000001.timeindex  sparse time index of that segment
//	state                           hard state, conf state, snapshot metadata, start offset
//	snap-<index 20 digits>.snap     a snapshot: the latest, and those at segment ends
//	recovery                        where the active segment is known durable
//
// All integers are little endian. Checksums are CRC32C (Castagnoli).
//
// Segment file: a 48-byte header, then frames.
//
//	header  [0:4) "SLSG"  [4] version 1  [5:8) zero
//	        [8:16) base index  [16:24) term of base index - 1
//	        [24:32) base offset  [32:40) created (unix ms)
//	        [40:44) zero  [44:48) CRC32C of [0:44)
//	frame   [0:4) body length n (>= 29)  [4:8) CRC32C of the body
//	        body: [0:8) index  [8:16) term  [16] raftpb.EntryType
//	              [17:21) records  [21:29) max timestamp (unix ms)  [29:n) data
//
// The header's previous term answers Term(FirstIndex()-1) after older
// segments are deleted; its base offset places the segment in offset
// space. A segment ends where the next one begins.
//
// Preallocation: the active segment's blocks are reserved ahead of its
// frames with fallocate(2) (Options.PreallocateBytes, default 4 MiB ahead,
// through the FS's optional vfs.Preallocator; silently not done where the
// filesystem cannot). The file then extends past the last frame with
// zeros: a frame header of eight zero bytes marks the end of the frames,
// not a torn frame. A roll truncates the segment to its frames before
// fsyncing it, so a sealed segment's file size is its size; Close trims
// the active segment too. After a crash Open ends the active segment at
// the first zero header (or torn frame) and truncates the file there,
// releasing the preallocated blocks, which the next append reserves again.
// A log thus holds up to PreallocateBytes of disk beyond its data.
//
// Zeros ahead: fallocate leaves "unwritten" blocks, and the fdatasync after
// a write into them must also commit their conversion through the
// filesystem's journal. A log whose last 8 flushes were fdatasyncs of less
// than 16 KiB each (a partition synced on its own, a record or a few per
// sync) writes zeros 1 MiB ahead of its frames instead (vfs.ZeroWriter): once
// an fdatasync has allocated them, later ones write data and flush the
// device cache only. A log that syncs more per flush, or is flushed by a
// syncfs (which commits the journal anyway), keeps fallocate, since writing
// every byte twice would cost it bandwidth. The zeros end the frames like
// preallocated space does.
//
// Index files hold 24-byte entries and no header; each entry ends with the
// CRC32C of its first 20 bytes. Entries are taken at frame boundaries, at
// most one per IndexIntervalBytes of frames; the segment start is implied.
//
//	.index      [0:8) next offset at pos  [8:16) index of the frame at pos
//	            [16:20) pos  [20:24) CRC
//	.timeindex  [0:8) max timestamp of the batches before pos
//	            [8:16) next offset at pos  [16:20) pos  [20:24) CRC
//
// The offset index serves lookups by Raft index and by offset (both grow
// with pos); the time index has an entry where the max timestamp grew, so
// it is also exact at every offset-index point. The active segment's new
// entries are kept in memory and written when the segment grew 1 MiB
// since the last write (and by a roll, a truncation, Close and the fsync
// of the recovery point); each write first gives the time index an entry
// at the offset index's last point if it ends before it (the timestamp of
// its previous entry: unchanged), so that both files of every write end
// at the same point. Sealing a segment
// appends a sentinel to both at pos = segment size (next offset, last
// index + 1, the segment's max timestamp) and fsyncs them. Index files are
// never loaded whole: lookups binary-search them with 24-byte reads.
//
// State file: [0:4) "SLST" [4] version 1 [5] flags (bit 0 hard state set,
// bit 1 log reset pending) [6:8) zero [8:12) payload length [12:16) CRC32C
// of the payload; payload: hard state term, vote, commit; start offset;
// snapshot index, term, next offset (8 bytes each); conf state and
// snapshot conf state, each a uvarint length and a raftpb.ConfState
// protobuf. It is replaced atomically: write state.tmp, fsync, rename,
// fsync the directory. Snapshot files ("SLSC", CRC32C of the rest, index,
// term, conf state as a uvarint length and a raftpb.ConfState protobuf,
// data) are written the same way.
//
// # Durability and group commit
//
// Append writes (one write per call, large entries straight from the
// caller's slice) and Sync makes the writes durable. With a SyncGroup,
// Sync joins the next flush cycle; a cycle takes every log with a waiting
// Sync and makes each one's active segment durable once, then wakes all
// waiters. In SyncAuto mode (the default) the dirty logs of a cycle that
// share a filesystem, when there are two or more, are flushed by one
// syncfs(2) of that filesystem; a single dirty log, logs alone on their
// filesystem, SyncFdatasync mode, an FS without FilesystemSyncer and
// kernels before Linux 5.8 use one fdatasync per log, up to 16 in
// parallel. A Sync that finds no cycle running runs one on its own
// goroutine (leader); Syncs arriving meanwhile wait for the next cycle,
// which the leader hands to the group's flusher goroutine, which runs
// cycles until no Sync waits. A flusher cycle that is one syncfs is
// completed (outcomes recorded in the logs, waiters woken) by the group's
// completer goroutine while the flusher starts the next syncfs: with many
// busy logs the filesystem flushes back to back, each cycle taking the
// logs that appended and synced during the previous one. While a
// completion is under way the flusher keeps the lead even if no Sync
// waits yet, and yields once before taking a batch of fewer than half
// its last cycle's logs, so that woken waiters on their way back join it
// (instead of a cycle of one log running in between). A cycle's waiters
// share one channel, closed when it is complete; each reads its outcome
// from its log (durable up to its write sequence, or the log's error).
// A flush writes the active segment's index
// entries only every 1 MiB: two more dirty files per log and cycle cost a
// syncfs about as much as the segments themselves. Either way the directory is fsynced after a segment was
// created (syncfs on ext4 commits directory entries too, but the log does
// not rely on it). Linux 5.8 is required because only from then on does
// syncfs report writeback errors (the superblock's errseq); the group opens
// its handle on a filesystem (the directory of the first log there) before
// that log writes, so its syncfs sees every later error. A syncfs error
// fails every log of that cycle and retires the handle: the error cursor
// has moved past it, so from then on the filesystem's logs use fdatasync,
// whose per-file cursor reports each file's own errors. Rolling a segment
// fsyncs the sealed segment and its
// indexes before the new one takes writes; a suffix truncation that
// deletes segment files fsyncs the directory at once, so a stale segment
// never comes back. The first failed write or fsync fails the log: every
// later write, Sync included, returns that error (ErrFailed); an fsync is
// never retried, because the kernel may have dropped the dirty pages.
// syncfs also writes back other files of the filesystem early; the log
// tolerates any file content becoming durable early, as the kernel's own
// writeback may do.
//
// # Recovery
//
// Open reads the state file and each segment's header (nothing else of
// sealed segments), and scans the active segment from its recovery point
// on, checking every frame's CRC, index sequence and term order; it
// truncates the file at the first torn or corrupt frame and indexes the
// frames it scanned. The recovery point (file "recovery": "SLRP", segment
// base index, position, last index and term, next offset, max timestamp,
// position of the last frame, CRC32C) is rewritten in place after a successful
// flush when it moved 1 MiB since it was last written, fsynced only when
// it moved 32 MiB (or into a new segment) since its last fsync, and
// written durably by Close: a stale or lost update only
// lengthens the scan, a crash scans at most about 32 MiB plus what the
// kernel had not written back, and a clean restart scans nothing. Open checks the
// last frame below it and keeps the index entries below it that check out;
// without a usable point it scans the whole segment. A suffix truncation
// or log reset first erases the point durably; index entries are made
// durable only after the frames they describe (a truncation fsyncs the
// segment before its truncated indexes; indexes rebuilt or trimmed at open
// are fsynced), so no byte or index entry of an older file content can
// come back below a later point. Since index entries are written only
// every 1 MiB and fsynced with the recovery point, a crash may lose those
// of the last frames below the point, in either index file. Open keeps
// the entries of both files up to the last point where both are complete
// (the earlier of their last valid entries below the recovery point;
// writes end both files at the same point), where the time index gives
// the exact max timestamp, and scans and indexes the frames from there:
// after a clean Close that is less than IndexIntervalBytes and a frame. A
// torn header of the newest segment
// (created, never synced with data) removes it. A sealed segment's indexes are validated the first time it is used (CRCs,
// order, sentinel matching the next segment) and rebuilt by a scan when
// missing or damaged. A corrupt frame inside a sealed segment is logged
// and reported as *CorruptionError with file and position by any read that
// reaches it; its bytes are never returned (every frame served is CRC
// checked). If the state records a snapshot install that did not finish,
// or the log does not reach the snapshot, the log restarts empty after it.
//
// # Retention and snapshots
//
// ApplyRetention and DeleteBefore delete whole segments from the front,
// never the active one, never one holding an entry above safeIndex, and
// only up to a segment whose last index has a snapshot: the log always
// starts right after a snapshot (snapshots.go). The caller snapshots at
// each segment's last index (SegmentBaseAfter finds them), so
// StartSnapshot, the snapshot at FirstIndex-1, lets a follower behind the
// log install it and then receive every entry the log still holds; the
// latest snapshot (Snapshot, as in raft.MemoryStorage) is where a restart
// resumes. Without a snapshot nothing is deleted. Snapshot files below
// FirstIndex-1, or neither latest nor at a segment's end, are deleted.
// DeleteBefore also moves the start offset inside a segment, durably. A
// retention deletion is not fsynced in the directory; after a crash an
// unlinked old segment may reappear, which only lowers the start, and a
// crash in the middle of a deletion can leave the log starting after a
// segment end without a snapshot, where StartSnapshot falls back to the
// latest. CreateSnapshot records a snapshot without deleting entries;
// ApplySnapshot drops the log and restarts it after the snapshot.
//
// # Reads and memory
//
// Read locates the batch holding an offset through the offset index (a
// binary search and a scan of at most IndexIntervalBytes of frame
// headers), then reads whole frames in one pread per budget's worth: the
// returned Batch.Data slices that buffer, one copy from the page cache.
// ReadInto does the same into a caller's buffer (a fetch reuses one per
// stream), which spares the allocation, zeroing and garbage collection of
// a fresh buffer per read: the difference between about 1.4 and 4 GB/s for
// 1 MiB entries (perf.md).
// Readers pin the segment's open file (a reference count), so rolls,
// truncations and retention never pull it from under them. Entries serves
// recent entries from a bounded cache (CacheBytes) and older ones from the
// segments, allocating in proportion to the result only. The cache holds a
// copy of what Append was given, or, with RetainData, the caller's bytes
// themselves (raft's entries, which nobody modifies: the copy was one more
// pass over every byte appended). An open log costs
// about 90 bytes of heap per segment (10,000 segments: under 1 MiB,
// measured by TestHeapAfterOpen), whatever their size: a segment's files
// and index state exist only while it is open, and at most 8 sealed
// segments stay open.
//
// # LOCKING
//
// Log.mu guards everything in Log.mu (segment list, last index and term,
// offsets, state, cache, write and sync sequence numbers) and every field
// of the segments, including their open files and reference counts.
// Methods with the Locked suffix require it; so does writing the recovery
// point file (Log.recf). Log.syncMu serializes flushes of one log and is
// held across their fsyncs (of the active segment, pinned by a reference,
// and now and then of the recovery point), which run without mu; it is
// always taken before mu, and Close takes it too.
// Appends, truncations, rolls and state writes hold mu, including the
// fsyncs of a roll and of the state file. Reads hold mu to locate data and
// release it for the bulk read (Entries and the other raft.Storage methods
// read under mu). SyncGroup.mu guards the group's pending
// batch (and each Log.inPending), who runs cycles, the completions in
// flight and its filesystem handles; it is never held while a log's
// locks are taken. A syncfs flush holds the syncMu of every log it covers
// from before the syncfs until its completion, which may run on the
// completer goroutine while the flusher prepares the next cycle's logs
// (a log in both waits on its syncMu; the completer waits on nothing). SyncGroup.mu.leader says
// who runs cycles (nobody, a Sync caller, the flusher): one runner at a
// time, handed from a caller to the flusher under SyncGroup.mu. A cycle
// runs on its runner's goroutine: the goroutine that runs a syncfs flush
// takes the syncMu of every log it covers, one after the other (the only
// place that holds more than one). A SyncGroup owns a flusher and a
// completer goroutine (and the short-lived fsync workers of a cycle of
// several fdatasyncs); Close waits for both and closes the handles. A Log starts no goroutines.
//
// # Testing
//
// go test ./storage/... runs everything briefly (a few seconds, under
// -race too). STORAGE_SOAK=1 go test -run TestRandomizedAgainstModel
// -timeout 30m ./storage/ runs the model test with 40 seeds of 3,000 steps
// and on-disk invariant checks after every step (about 5 minutes). The
// model test runs every operation sequence inline, through a SyncGroup,
// with concurrent Syncs, and with a peer log on the same filesystem so
// that cycles flush both with one (simulated) syncfs; odd steps read
// through ReadInto with a reused buffer. faultfs models syncfs: every
// file's contents become durable, directory entries do not.
// Crash tests cut the active segment at every byte, with and without a
// zero tail (preallocated space), and lose index entries of either file
// (TestCrashRebuildsIndexTail); the model test runs without, with little
// and with much preallocation.
// Each fuzz target runs alone: go test -run '^$' -fuzz FuzzFrame
// -fuzztime 10s ./storage/ (also FuzzSegmentHeader, FuzzIndexEntry,
// FuzzState, FuzzRecover, FuzzRecoveryPoint).
//
// # Performance
//
// go test -run '^$' -bench 'AppendSync|Raw|FlushCeiling|ReadSequential|Entries'
// ./storage/ measures append+fsync (1 KiB, 16 KiB, 1 MiB entries; 1
// partition alone and through a SyncGroup, and 100 partitions sharing a
// SyncGroup; STORAGE_SYNC_MODE=fdatasync forces per-file fsyncs,
// STORAGE_PREALLOC=off|keep turns preallocation off or keeps the file
// size), a raw write+fdatasync loop, the raw ceiling of a flush cycle
// (BenchmarkRawSyncfs: 50 plain files appended, one syncfs),
// BenchmarkFlushCeiling (100 partitions in phases interleaved with the
// raw syncfs loop over as many files as a cycle flushed: flushes/s,
// logs/flush, records/s, the raw cycles/s and their ratio, from one
// run), sequential reads of 1 MiB entries from the page cache with Read and
// ReadInto, and Entries allocations for small and large logs. Figures
// from the development machine, next to its raw figures, are kept in
// perf.md in this directory.
package storage
