package batch

import (
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// NormalizeFramedIn is NormalizeFramed building the framed form in room when
// it can, instead of a new allocation: room must end where b.RecordsData
// starts, in the same array (a decoder that aliases records_data into the
// received message passes the bytes in front of it). When the batch is
// in records_data and room holds reserve bytes and the stored
// header, framed is room's tail followed by records_data (as sent,
// compressed or not): the records are neither copied nor changed, but
// room's bytes are overwritten. Otherwise it is NormalizeFramed. Validation and errors are NormalizeFramed's.
func NormalizeFramedIn(b *sluicev1.RecordBatch, l Limits, reserve int, room []byte) (framed []byte, h Header, err error) {
	if !adjacent(room, b.GetRecordsData()) {
		room = nil
	}
	return normalize(b, l, reserve, room)
}

// adjacent reports whether data starts right after room in one array.
func adjacent(room, data []byte) bool {
	n := len(room)
	return len(data) > 0 && n > 0 && cap(room)-n >= len(data) && &room[:n+1][n] == &data[0]
}

// inRoom writes head (reserve bytes and the stored header) at the end of
// room and returns the framed form there, or nil when room is too small.
func inRoom(room, head, data []byte) []byte {
	start := len(room) - len(head)
	if room == nil || start < 0 {
		return nil
	}
	copy(room[start:], head)
	return room[start : len(room)+len(data)]
}
