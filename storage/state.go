package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// State file ("state"), replaced atomically (write state.tmp, fsync,
// rename, fsync dir). Layout (little endian):
//
//	[0:4)   magic "SLST"
//	[4]     version (1)
//	[5]     flags: bit 0 hard state set, bit 1 log reset pending
//	[6:8)   reserved
//	[8:12)  payload length n
//	[12:16) CRC32C of the payload
//	payload:
//	  hard state term, vote, commit       3 x u64
//	  start offset                        u64
//	  snapshot index, term, next offset   3 x u64
//	  conf state        uvarint length + raftpb.ConfState protobuf
//	  snapshot conf     uvarint length + raftpb.ConfState protobuf
const (
	stateFile       = "state"
	stateHeaderSize = 16
	stateVersion    = 1
	flagHardState   = 1 << 0
	flagResetLog    = 1 << 1
)

var stateMagic = [4]byte{'S', 'L', 'S', 'T'}

// persistedState is everything the state file holds.
type persistedState struct {
	HasHardState bool
	HardState    raftpb.HardState
	ResetPending bool // a snapshot install has to drop the log at open
	StartOffset  uint64
	SnapIndex    uint64
	SnapTerm     uint64
	SnapNext     uint64 // next offset after the snapshot
	ConfState    raftpb.ConfState
	SnapConf     raftpb.ConfState
}

func (s *persistedState) encode() ([]byte, error) {
	cs, err := proto.Marshal(&s.ConfState)
	if err != nil {
		return nil, err
	}
	scs, err := proto.Marshal(&s.SnapConf)
	if err != nil {
		return nil, err
	}
	p := make([]byte, 0, 64+len(cs)+len(scs)+20)
	p = binary.LittleEndian.AppendUint64(p, s.HardState.GetTerm())
	p = binary.LittleEndian.AppendUint64(p, s.HardState.GetVote())
	p = binary.LittleEndian.AppendUint64(p, s.HardState.GetCommit())
	p = binary.LittleEndian.AppendUint64(p, s.StartOffset)
	p = binary.LittleEndian.AppendUint64(p, s.SnapIndex)
	p = binary.LittleEndian.AppendUint64(p, s.SnapTerm)
	p = binary.LittleEndian.AppendUint64(p, s.SnapNext)
	p = binary.AppendUvarint(p, uint64(len(cs)))
	p = append(p, cs...)
	p = binary.AppendUvarint(p, uint64(len(scs)))
	p = append(p, scs...)

	b := make([]byte, stateHeaderSize, stateHeaderSize+len(p))
	copy(b, stateMagic[:])
	b[4] = stateVersion
	if s.HasHardState {
		b[5] |= flagHardState
	}
	if s.ResetPending {
		b[5] |= flagResetLog
	}
	binary.LittleEndian.PutUint32(b[8:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[12:], crc(p))
	return append(b, p...), nil
}

func decodeState(b []byte) (*persistedState, error) {
	if len(b) < stateHeaderSize {
		return nil, errors.New("short state file")
	}
	if [4]byte(b[:4]) != stateMagic {
		return nil, errors.New("bad state magic")
	}
	if b[4] != stateVersion {
		return nil, fmt.Errorf("unknown state version %d", b[4])
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if uint64(n) != uint64(len(b)-stateHeaderSize) {
		return nil, errors.New("state length mismatch")
	}
	p := b[stateHeaderSize:]
	if crc(p) != binary.LittleEndian.Uint32(b[12:]) {
		return nil, errors.New("state checksum mismatch")
	}
	if len(p) < 56 {
		return nil, errors.New("short state payload")
	}
	s := &persistedState{
		HasHardState: b[5]&flagHardState != 0,
		ResetPending: b[5]&flagResetLog != 0,
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(p[8*i:]) }
	s.HardState.Term, s.HardState.Vote, s.HardState.Commit = new(u(0)), new(u(1)), new(u(2))
	s.StartOffset, s.SnapIndex, s.SnapTerm, s.SnapNext = u(3), u(4), u(5), u(6)
	p = p[56:]
	for _, cs := range []*raftpb.ConfState{&s.ConfState, &s.SnapConf} {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, errors.New("bad conf state length")
		}
		if err := proto.Unmarshal(p[k:k+int(l)], cs); err != nil {
			return nil, fmt.Errorf("conf state: %w", err)
		}
		p = p[k+int(l):]
	}
	if len(p) != 0 {
		return nil, errors.New("trailing bytes in state")
	}
	return s, nil
}

// Snapshot files ("snap-<index>.snap", 20 digits), written atomically:
//
//	[0:4)   magic "SLSC"
//	[4:8)   CRC32C of [8:end)
//	[8:16)  index
//	[16:24) term
//	[24:)   conf state: uvarint length + raftpb.ConfState protobuf
//	        then the data
//
// Files of the first format (magic "SLSN") hold the data right after the
// term and no conf state; only the latest snapshot was kept then, and its
// conf state is the state file's (decodeSnap returns cs nil for them).
const snapHeaderSize = 24

var (
	snapMagic   = [4]byte{'S', 'L', 'S', 'C'}
	snapMagicV1 = [4]byte{'S', 'L', 'S', 'N'}
)

func snapName(index uint64) string { return fmt.Sprintf("snap-%020d.snap", index) }

// parseSnapName returns the index of a snapshot file name.
func parseSnapName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "snap-")
	if s, ok = strings.CutSuffix(s, ".snap"); !ok || len(s) != 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func encodeSnap(index, term uint64, cs *raftpb.ConfState, data []byte) ([]byte, error) {
	pcs, err := proto.Marshal(cs)
	if err != nil {
		return nil, err
	}
	b := make([]byte, snapHeaderSize, snapHeaderSize+binary.MaxVarintLen64+len(pcs)+len(data))
	copy(b, snapMagic[:])
	binary.LittleEndian.PutUint64(b[8:], index)
	binary.LittleEndian.PutUint64(b[16:], term)
	b = binary.AppendUvarint(b, uint64(len(pcs)))
	b = append(b, pcs...)
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b[4:], crc(b[8:]))
	return b, nil
}

func decodeSnap(b []byte) (index, term uint64, cs *raftpb.ConfState, data []byte, err error) {
	if len(b) < snapHeaderSize || [4]byte(b[:4]) != snapMagic && [4]byte(b[:4]) != snapMagicV1 {
		return 0, 0, nil, nil, errors.New("bad snapshot header")
	}
	if crc(b[8:]) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, 0, nil, nil, errors.New("snapshot checksum mismatch")
	}
	p := b[snapHeaderSize:]
	if [4]byte(b[:4]) == snapMagicV1 {
		return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), nil, p, nil
	}
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return 0, 0, nil, nil, errors.New("bad snapshot conf state length")
	}
	cs = &raftpb.ConfState{}
	if err := proto.Unmarshal(p[k:k+int(n)], cs); err != nil {
		return 0, 0, nil, nil, fmt.Errorf("snapshot conf state: %w", err)
	}
	return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), cs, p[k+int(n):], nil
}

// writeFileAtomic replaces dir/name with b: write name.tmp, fsync, rename,
// fsync dir.
func writeFileAtomic(fs FS, dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

// readWholeFile reads a small file.
func readWholeFile(fs FS, path string) ([]byte, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && n > 0 {
		return nil, err
	}
	return b, nil
}
