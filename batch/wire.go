package batch

import "google.golang.org/protobuf/encoding/protowire"

// FindOnce walks the fields of the protobuf message encoding b and returns
// where the only field numbered num starts (its tag), ends, and where its
// value starts; ok is false when b is not valid wire form, or num occurs
// other than once or not with the bytes wire type. Clients and servers use
// it to splice a batch's records_data into or out of a request without
// copying it.
func FindOnce(b []byte, num protowire.Number) (start, end, vstart int, ok bool) {
	found := false
	for off := 0; off < len(b); {
		n, typ, tl := protowire.ConsumeTag(b[off:])
		if tl < 0 {
			return 0, 0, 0, false
		}
		vl := protowire.ConsumeFieldValue(n, typ, b[off+tl:])
		if vl < 0 {
			return 0, 0, 0, false
		}
		if n == num {
			if found || typ != protowire.BytesType {
				return 0, 0, 0, false
			}
			_, ll := protowire.ConsumeVarint(b[off+tl:])
			found, start, vstart, end = true, off, off+tl+ll, off+tl+vl
		}
		off += tl + vl
	}
	return start, end, vstart, found
}
