package replication

import (
	"bytes"
	"testing"
)

// A batch handed over with room for the header becomes the same entry as
// one that is copied, built in its own buffer.
func TestEncodeRecordsFramed(t *testing.T) {
	stored := []byte("stored batch bytes")
	framed := append(make([]byte, CommandHeaderLen), stored...)
	b := ProduceBatch{Data: stored, Records: 3, MaxTimestamp: 77, ProducerID: 9, ProducerEpoch: 1, BaseSequence: 4}
	want := encodeRecords(1, 2, &b, 55, 66)

	fb := b
	fb.Data, fb.Framed = framed[CommandHeaderLen:], framed
	got := encodeRecords(1, 2, &fb, 55, 66)
	if !bytes.Equal(got, want) {
		t.Fatalf("framed entry %x, want %x", got, want)
	}
	if &got[0] != &framed[0] {
		t.Fatal("the framed buffer was copied")
	}
	// Framed that does not hold Data right behind the header is ignored.
	bad := b
	bad.Framed = append(make([]byte, CommandHeaderLen), stored...)
	if got := encodeRecords(1, 2, &bad, 55, 66); !bytes.Equal(got, want) || &got[0] == &bad.Framed[0] {
		t.Fatal("a Framed not holding Data was used")
	}
}
