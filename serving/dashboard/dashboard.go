// Package dashboard is the browser page served at / (issue 8): pick a view,
// a metric, a range and a grouping, and watch a time series in which batch
// buckets and speed buckets are drawn in different styles with the boundary
// B marked, refreshing every few seconds, with the job history below.
//
// It is plain HTML, CSS and JavaScript of our own, embedded in the binary:
// no build step beyond `go build`, no third-party script. The page talks to
// the same HTTP API as every other client (GET /v1/views, /v1/views/{v}/query,
// /v1/jobs) and sends a bearer token from the page's token field when the
// server asks for one.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Routes are the patterns Register adds.
var Routes = []string{"GET /{$}", "GET /ui/"}

// Handle is how a server takes routes (serving.Server has it).
type Handle func(pattern string, h http.Handler)

// Register mounts the page at / and its assets under /ui/.
func Register(handle Handle) {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	handle(Routes[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	}))
	handle(Routes[1], http.StripPrefix("/ui/", files))
}
