package clients

// StickyPartition is the partition the next record of topic without a key goes to, or
// the one the last such record went to before a move: -1 before any. Tests read it
// right after Produce, while the record still belongs to the producer.
func StickyPartition(p *Producer, topic string) int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.mu.sticky[topic]; st != nil {
		return st.partition
	}
	return -1
}
