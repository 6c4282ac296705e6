// Package duck runs DuckDB, the peer of the batch benchmarks (DESIGN §7):
// Python's duckdb package from .venv-duckdb (`make duckdb`), a test and
// benchmark dependency only. A bench hands it a short Python script that
// times its own statements inside DuckDB and prints its figures on one
// line; Run returns that line's fields.
package duck

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// DefaultPython is the venv `make duckdb` creates, from the repo root.
const DefaultPython = ".venv-duckdb/bin/python"

// Run runs script with python and args and returns the fields of the last
// line it printed. DuckDB's own messages go to this process's stderr.
func Run(ctx context.Context, python, script string, args ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, python, append([]string{"-c", script}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("duck: %s (run `make duckdb` first): %w", python, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Fields(lines[len(lines)-1]), nil
}

// Floats parses fields as numbers, naming the output in an error.
func Floats(fields []string, want int) ([]float64, error) {
	if len(fields) != want {
		return nil, fmt.Errorf("duck: want %d figures, got %q", want, strings.Join(fields, " "))
	}
	out := make([]float64, len(fields))
	for i, f := range fields {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("duck: figure %d of %q: %w", i, strings.Join(fields, " "), err)
		}
		out[i] = x
	}
	return out, nil
}

// Quote is s as a SQL string literal.
func Quote(s string) string {
	var b bytes.Buffer
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
	return b.String()
}
