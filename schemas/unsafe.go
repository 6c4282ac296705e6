package schemas

import "unsafe"

// unsafeBytes views a string as bytes without copying. parquet-go only reads
// the bytes, and the string outlives the write, so this saves one allocation
// per string cell on the compactor's hot path.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
