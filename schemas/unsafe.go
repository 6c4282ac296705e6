package schemas

import "unsafe"

// unsafeBytes views a string as bytes without copying. parquet-go only reads
// the bytes, and the string outlives the write, so this saves one allocation
// per string cell on the compactor's hot path.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// borrowString views bytes as a string without copying; the caller must not
// change b while the string is in use (NewBorrowingDecoder's contract).
func borrowString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
