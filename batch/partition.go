package batch

// KeyPartition returns the partition of a keyed record among partitions partitions,
// exactly as Kafka's default partitioner places it:
// toPositive(murmur2(key)) % partitions. It returns 0 when partitions < 1.
//
// Sluice cannot tell an empty key from no key on the wire (proto3 bytes), so callers treat
// an empty key as "no key" and do not hash it; KeyPartition itself hashes whatever it gets.
func KeyPartition(key []byte, partitions int32) int32 {
	if partitions < 1 {
		return 0
	}
	return int32(Murmur2(key)&0x7fffffff) % partitions
}

// Murmur2 is Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2): 32-bit
// MurmurHash2 with seed 0x9747b28c. The result is Java's signed int as a Go int32.
func Murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	length := len(data)
	h := uint32(seed) ^ uint32(length)
	n4 := length / 4
	for i := 0; i < n4; i++ {
		i4 := i * 4
		k := uint32(data[i4]) | uint32(data[i4+1])<<8 | uint32(data[i4+2])<<16 | uint32(data[i4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}
