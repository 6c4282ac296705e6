package serving

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"gopkg.in/yaml.v3"

	"github.com/lambdalake/lambdalake/internal/config"
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

// The document is valid OpenAPI 3 for a well-kept validator (kin-openapi),
// as Swagger UI and client generators need it to be.
func TestOpenAPIValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiDoc)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI: %v", err)
	}
	if s := doc.Components.Schemas["Error"].Value.Properties["param"].Value; s == nil || !strings.Contains(s.Description, "Authorization") {
		t.Errorf("Error.param description: %+v", s)
	}
}

// Every answer the handlers give — successes and each kind of refusal,
// rate-limit headers included — is one the document describes: its status
// is listed for the route, its body fits the schema, its documented
// headers are there.
func TestOpenAPIDescribesAnswers(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil // match any host
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *APIConfig) {
		c.MaxBody = 1 << 20
		c.Tokens = append(c.Tokens,
			config.Token{Name: "limited", Token: limitedTok, Scopes: []string{"read:views", "write:events"}, Rate: 1, Burst: 2},
			config.Token{Name: "acme", Token: tenantTok, Scopes: []string{"read:views"}, Filters: map[string]string{"tenant": "t07"}})
	})
	f.speedOK()
	f.srv.cfg.Checks = map[string]Check{"redis": func(context.Context) error { return nil }}
	q := "/v1/views/revenue/query?from=2026-11-27T08:00:00Z&to=2026-11-27T10:00:00Z"
	ev := []byte(event(1, "a") + "\n" + event(2, "t\xff") + "\n")
	cases := []struct {
		method, target, token string
		body                  []byte
		want                  int
	}{
		{"GET", q, readTok, nil, 200},
		{"GET", q + "&format=csv&group_by=tenant", readTok, nil, 200},
		{"GET", q + "&format=ndjson", readTok, nil, 200},
		{"GET", q, limitedTok, nil, 200},
		{"GET", q, limitedTok, nil, 200},
		{"GET", q, limitedTok, nil, 429},
		{"GET", q + "&where=tenant:t08", tenantTok, nil, 403},
		{"GET", q + "&grup_by=x", readTok, nil, 400},
		{"GET", q, "", nil, 401},
		{"GET", q, writeTok, nil, 403},
		{"GET", "/v1/views/nope/query?from=0&to=1", readTok, nil, 404},
		{"GET", "/v1/views/revenue/query?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&step=1d", readTok, nil, 413},
		{"GET", "/v1/views", readTok, nil, 200},
		{"GET", "/v1/views?x=1", readTok, nil, 400},
		{"POST", "/v1/events?schema=orders", writeTok, ev, 200},
		{"POST", "/v1/events?schema=orders&strict=true", writeTok, ev, 400},
		{"POST", "/v1/events?schema=nope", writeTok, ev, 404},
		{"POST", "/v1/events?schema=orders", writeTok, bytes.Repeat([]byte("x"), 2<<20), 413},
		{"GET", "/v1/jobs?limit=5", adminTok, nil, 200},
		{"GET", "/v1/jobs?limit=0", adminTok, nil, 400},
		{"GET", "/v1/openapi.yaml", "", nil, 200},
		{"GET", "/readyz", "", nil, 200},
		{"GET", "/healthz", "", nil, 200},
	}
	for _, c := range cases {
		code, body, hdr := f.do(t, c.method, c.target, c.token, c.body)
		if code != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.target, code, c.want, body)
			continue
		}
		req := httptest.NewRequest(c.method, c.target, nil)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in the document: %v", c.method, c.target, err)
			continue
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 code, Header: hdr,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		in.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s: %d answer not as documented: %v", c.method, c.target, code, err)
		}
	}
}
