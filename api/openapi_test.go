package api

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail/event"
)

// wireTypes maps each schema of the OpenAPI document's components to the
// Go type that is its JSON. Request bodies (read by the server, not
// written) may leave optional fields unmarked.
var wireTypes = []struct {
	schema  string
	typ     reflect.Type
	request bool
}{
	{"Actor", reflect.TypeFor[event.Actor](), false},
	{"Target", reflect.TypeFor[event.Target](), false},
	{"Source", reflect.TypeFor[event.Source](), false},
	{"Changes", reflect.TypeFor[event.Changes](), false},
	{"EventInput", reflect.TypeFor[EventInput](), true},
	{"Batch", reflect.TypeFor[Batch](), true},
	{"Receipt", reflect.TypeFor[Receipt](), false},
	{"Receipts", reflect.TypeFor[Receipts](), false},
	{"Event", reflect.TypeFor[event.Event](), false},
	{"Page", reflect.TypeFor[Page](), false},
	{"InclusionProof", reflect.TypeFor[InclusionProof](), false},
	{"EventProof", reflect.TypeFor[EventProof](), false},
	{"ConsistencyProof", reflect.TypeFor[ConsistencyProof](), false},
	{"LogInfo", reflect.TypeFor[LogInfo](), false},
	{"Error", reflect.TypeFor[Error](), false},
	{"ErrorDetail", reflect.TypeFor[ErrorDetail](), false},
	{"KeyInfo", reflect.TypeFor[KeyInfo](), false},
	{"Keys", reflect.TypeFor[Keys](), false},
	{"KeyRequest", reflect.TypeFor[KeyRequest](), true},
	{"NewKey", reflect.TypeFor[NewKey](), false},
	{"Count", reflect.TypeFor[Count](), false},
	{"Actions", reflect.TypeFor[Actions](), false},
	{"Stats", reflect.TypeFor[Stats](), false},
	{"StatsBucket", reflect.TypeFor[StatsBucket](), false},
	{"IPCount", reflect.TypeFor[IPCount](), false},
}

// scalarSchemas are the component schemas that are not objects.
var scalarSchemas = map[string]bool{"Outcome": true}

// schema is the part of a JSON Schema that the checks read.
type schema struct {
	Ref        string             `json:"$ref"`
	Type       any                `json:"type"`
	Enum       []string           `json:"enum"`
	Required   []string           `json:"required"`
	Properties map[string]*schema `json:"properties"`
	AllOf      []*schema          `json:"allOf"`
}

type parameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type document struct {
	Paths map[string]map[string]struct {
		Parameters []parameter `json:"parameters"`
	} `json:"paths"`
	Components struct {
		Schemas    map[string]*schema   `json:"schemas"`
		Parameters map[string]parameter `json:"parameters"`
	} `json:"components"`
}

func openDocument(t *testing.T) *document {
	t.Helper()
	var doc document
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &doc
}

// object returns the properties and required fields of s, its allOf parts
// merged and references followed.
func (d *document) object(t *testing.T, s *schema) (props map[string]bool, required []string) {
	t.Helper()
	if name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/"); ok {
		target := d.Components.Schemas[name]
		if target == nil {
			t.Fatalf("dangling $ref %q", s.Ref)
		}
		return d.object(t, target)
	}
	props = map[string]bool{}
	for name := range s.Properties {
		props[name] = true
	}
	required = slices.Clone(s.Required)
	for _, part := range s.AllOf {
		p, r := d.object(t, part)
		maps.Copy(props, p)
		required = append(required, r...)
	}
	return props, required
}

// jsonField is a field of a Go type's JSON object.
type jsonField struct {
	goName string
	omit   bool // omitempty or omitzero: not always written
}

// jsonFields returns the JSON object members of struct type typ, by name,
// as encoding/json writes them: embedded structs without a name are
// inlined.
func jsonFields(typ reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for o := range strings.SplitSeq(opts, ",") {
			omit = omit || o == "omitempty" || o == "omitzero"
		}
		out[name] = jsonField{typ.Name() + "." + f.Name, omit}
	}
	return out
}

// Each Go wire type and the schema that documents it have the same JSON
// fields; a field the schema requires is always written, and a response
// field that is always written is required.
func TestSchemasMatchTypes(t *testing.T) {
	doc := openDocument(t)
	covered := map[string]bool{}
	for _, w := range wireTypes {
		t.Run(w.schema, func(t *testing.T) {
			covered[w.schema] = true
			s := doc.Components.Schemas[w.schema]
			if s == nil {
				t.Fatalf("openapi.json has no schema %s for %v", w.schema, w.typ)
			}
			props, required := doc.object(t, s)
			fields := jsonFields(w.typ)
			for name, f := range fields {
				if !props[name] {
					t.Errorf("%s (JSON %q) is not documented in schema %s", f.goName, name, w.schema)
				}
			}
			for name := range props {
				if _, ok := fields[name]; !ok {
					t.Errorf("schema %s documents %q, which %v does not have", w.schema, name, w.typ)
				}
			}
			for _, name := range required {
				if f, ok := fields[name]; ok && f.omit {
					t.Errorf("schema %s requires %q, but %s may be left out (omitempty/omitzero)", w.schema, name, f.goName)
				}
			}
			if w.request {
				return
			}
			for name, f := range fields {
				if !f.omit && !slices.Contains(required, name) {
					t.Errorf("%s (JSON %q) is always written, but schema %s does not require it", f.goName, name, w.schema)
				}
			}
		})
	}
	for name := range doc.Components.Schemas {
		if !covered[name] && !scalarSchemas[name] {
			t.Errorf("schema %s has no Go type in wireTypes", name)
		}
	}
}

// Every struct of this package that has JSON field tags is a documented
// wire type: a new body cannot go out undocumented.
func TestWireTypesAreListed(t *testing.T) {
	listed := map[string]bool{}
	for _, w := range wireTypes {
		if w.typ.PkgPath() == reflect.TypeFor[Page]().PkgPath() {
			listed[w.typ.Name()] = true
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(node ast.Node) bool {
			ts, ok := node.(*ast.TypeSpec)
			if !ok || !ts.Name.IsExported() {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, field := range st.Fields.List {
				if field.Tag != nil && strings.Contains(field.Tag.Value, `json:"`) {
					n++
					if !listed[ts.Name.Name] {
						t.Errorf("type %s has JSON fields but no schema in wireTypes (document it in openapi.json)", ts.Name.Name)
					}
					break
				}
			}
			return true
		})
	}
	if n < 10 {
		t.Errorf("found %d wire types in the package's source, want at least 10", n)
	}
}

func TestOutcomeSchema(t *testing.T) {
	doc := openDocument(t)
	got := doc.Components.Schemas["Outcome"].Enum
	want := []string{string(event.Success), string(event.Failure), string(event.Denied), string(event.Errored)}
	if !slices.Equal(got, want) {
		t.Errorf("Outcome schema enum = %q, want %q", got, want)
	}
}

// queryParams returns the names of the query parameters documented for
// GET path (references followed; headers left out).
func (d *document) queryParams(t *testing.T, path string) []string {
	t.Helper()
	op, ok := d.Paths[path]["get"]
	if !ok {
		t.Fatalf("openapi.json has no GET %s", path)
	}
	var names []string
	for _, p := range op.Parameters {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			p = d.Components.Parameters[name]
		}
		if p.In == "query" {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}

// fill sets every field of the struct x points to to a value that is not
// zero and that the parameter parsers accept.
func fill(x any) {
	v := reflect.ValueOf(x).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2026, 3, 1, 12, i, 0, 123456789, time.UTC)))
		case f.Type() == reflect.TypeFor[time.Duration]():
			f.Set(reflect.ValueOf(24 * time.Hour))
		case f.Kind() == reflect.String:
			f.SetString("v" + v.Type().Field(i).Name)
		case f.Kind() == reflect.Int:
			f.SetInt(7)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.Struct:
			fill(f.Addr().Interface())
		default:
			panic("fill: no sample for " + f.Type().String())
		}
	}
}

// Every field of x's type, set alone, gives a query parameter.
func checkEveryFieldMapped[T any](t *testing.T, values func(T) url.Values) {
	t.Helper()
	typ := reflect.TypeFor[T]()
	var full T
	fill(&full)
	for i := range typ.NumField() {
		var one T
		reflect.ValueOf(&one).Elem().Field(i).Set(reflect.ValueOf(full).Field(i))
		if v := values(one); len(v) == 0 {
			t.Errorf("%s.%s set alone gives no query parameter: map it in the parameter table and document it in openapi.json", typ.Name(), typ.Field(i).Name)
		}
	}
}

// The parameters that Values writes for a query with every field set are
// exactly those openapi.json documents for the endpoint, and the parse
// function reads each of them back, alone and all together.
func checkParams[T any](t *testing.T, doc *document, path string, x T, values func(T) url.Values, parse func(url.Values) (T, error)) {
	t.Helper()
	v := values(x)
	got := slices.Sorted(maps.Keys(v))
	if want := doc.queryParams(t, path); !slices.Equal(got, want) {
		t.Errorf("GET %s: Values writes parameters %q; openapi.json documents %q", path, got, want)
	}
	back, err := parse(v)
	if err != nil {
		t.Fatalf("GET %s: parsing %s = %v", path, v.Encode(), err)
	}
	if !reflect.DeepEqual(back, x) {
		t.Errorf("GET %s: parsing %s = %+v, want %+v", path, v.Encode(), back, x)
	}
	for name := range v {
		one := url.Values{name: v[name]}
		back, err := parse(one)
		if err != nil {
			t.Errorf("GET %s: parsing %s = %v", path, one.Encode(), err)
			continue
		}
		if got := values(back); !slices.Equal(got[name], v[name]) {
			t.Errorf("GET %s: parameter %s=%s read back as %q", path, name, v.Get(name), got[name])
		}
	}
}

func TestQueryParamsMatchDocument(t *testing.T) {
	doc := openDocument(t)
	var q Query
	fill(&q)
	q.Outcome = event.Failure
	t.Run("events", func(t *testing.T) {
		checkEveryFieldMapped(t, Query.Values)
		checkParams(t, doc, "/v1/events", q, Query.Values, ParseQuery)
	})
	filters := q
	filters.Limit, filters.Cursor = 0, ""
	t.Run("export", func(t *testing.T) {
		x := Export{Query: filters, Format: "csv", CSVRaw: true}
		checkEveryFieldMapped(t, Export.Values)
		checkParams(t, doc, "/v1/export", x, Export.Values, ParseExport)
	})
	t.Run("tail", func(t *testing.T) {
		checkParams(t, doc, "/v1/tail", filters, Query.Values, ParseTail)
	})
	t.Run("stats", func(t *testing.T) {
		var s StatsQuery
		fill(&s)
		checkEveryFieldMapped(t, StatsQuery.Values)
		checkParams(t, doc, "/v1/stats", s, StatsQuery.Values, ParseStatsQuery)
	})
}

// TestServersRelative checks that the document names no fixed host: a
// server at any address serves it, and clients resolve its paths against
// where they fetched it.
func TestServersRelative(t *testing.T) {
	var doc struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if len(doc.Servers) == 0 {
		t.Fatal("openapi.json lists no servers")
	}
	for _, s := range doc.Servers {
		if u, err := url.Parse(s.URL); err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(s.URL, "/") {
			t.Errorf("server URL %q: want a path relative to the document's host, such as /", s.URL)
		}
	}
}
