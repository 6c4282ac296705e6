package serving

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The OpenAPI document is the API's contract: every route the server
// registers is documented and nothing else is, and each route documents
// exactly the query parameters its parser accepts.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	var doc struct {
		OpenAPI string `yaml:"openapi"`
		Paths   map[string]map[string]struct {
			Parameters []struct {
				Name string `yaml:"name"`
				In   string `yaml:"in"`
			} `yaml:"parameters"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	f := newFixture(t, nil)
	registered := f.srv.Routes()
	var documented []string
	params := map[string][]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			route := strings.ToUpper(method) + " " + path
			documented = append(documented, route)
			var qs []string
			for _, p := range op.Parameters {
				if p.In == "query" {
					qs = append(qs, p.Name)
				}
			}
			params[route] = qs
		}
	}
	slices.Sort(registered)
	slices.Sort(documented)
	if !slices.Equal(registered, documented) {
		t.Errorf("routes registered:\n  %s\ndocumented:\n  %s", strings.Join(registered, "\n  "), strings.Join(documented, "\n  "))
	}
	accepted := map[string][]string{
		"GET /v1/views/{view}/query": queryParams,
		"POST /v1/events":            eventsParams,
		"GET /v1/jobs":               jobsParams,
	}
	for route, got := range params {
		want := slices.Clone(accepted[route])
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: documented query parameters %v, the handler accepts %v", route, got, want)
		}
	}
	// And the document is what the server serves.
	code, body, hdr := f.do(t, "GET", "/v1/openapi.yaml", "", nil)
	if code != 200 || string(body) != string(openapiDoc) || hdr.Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /v1/openapi.yaml: %d %s", code, hdr.Get("Content-Type"))
	}
}
