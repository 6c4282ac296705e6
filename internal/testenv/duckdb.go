package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// DuckDBPython returns the Python of the module root's .venv-duckdb (`make
// duckdb`), wherever the test's package lies, and fails t if it is not
// installed. DuckDB is a test dependency only, for the interop checks.
func DuckDBPython(t testing.TB) string {
	t.Helper()
	python := filepath.Join(repoRoot(), ".venv-duckdb", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("DuckDB is not installed (%v): run `make duckdb`", err)
	}
	return python
}
