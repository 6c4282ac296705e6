package schemas

// Keyed ingest: producers of this project (the Events API, gen) give each
// Kafka record the event's id as its key, so Kafka's key hashing puts
// every copy of an event in one partition, where the speed layer can
// recognise a repeat without looking at other partitions.

// AppendKey appends the Kafka record key of a decoded event of s to dst:
// the text of its id under UniqElement's rules (a string as it is, a
// number in decimal), so two copies that differ only in JSON spelling
// ("o\u0031" and "o1", 1.50 and 1.5) get one key. The key is never nil,
// even for an empty id: Kafka clients spread a nil key as no key. It
// returns dst unchanged and false when s has no id field: such records
// stay unkeyed.
func (s *Schema) AppendKey(dst []byte, r *Row) ([]byte, bool) {
	if s.ID == "" {
		return dst, false
	}
	i := s.index[s.ID]
	dst = AppendUniqElement(dst, s.Fields[i].Type, &r.Values[i])
	if dst == nil {
		dst = []byte{}
	}
	return dst, true
}
