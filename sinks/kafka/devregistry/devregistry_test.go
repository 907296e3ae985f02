package devregistry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

func serve(t *testing.T, opts ...srfake.Option) (*Registry, *sr.Client) {
	t.Helper()
	reg := New(opts...)
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl
}

func avroOf(t *testing.T, format string) sr.Schema {
	t.Helper()
	p, err := parser.Compile(format, parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return sr.Schema{Schema: p.Schema().Avro(), Type: sr.TypeAvro}
}

func responseError(t *testing.T, err error) *sr.ResponseError {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want a registry error response, got %v", err)
	}
	return re
}

// TestEvolutionIsBackward: a log_format that gains $request_id, then a
// request header and a response header, yields schemas a registry that
// checks BACKWARD compatibility (the registry's default) accepts as new
// versions of the same subject; so does dropping a variable.
func TestEvolutionIsBackward(t *testing.T) {
	_, cl := serve(t)
	ctx := context.Background()
	combined, _ := parser.Builtin("combined")
	formats := []string{
		"combined",
		combined + ` $request_id`,
		combined + ` $request_id "$http_x_forwarded_for" "$sent_http_content_type" $request_time $upstream_response_time`,
		`$remote_addr [$time_local] "$request" $status "$http_user_agent" $request_id`, // fields dropped
	}
	lastID := 0
	for i, f := range formats {
		ss, err := cl.CreateSchema(ctx, "nginx-access-value", avroOf(t, f))
		if err != nil {
			t.Fatalf("version %d (%s): %v", i+1, f, err)
		}
		if ss.Version != i+1 || ss.ID == lastID {
			t.Fatalf("format %d registered as version %d id %d", i+1, ss.Version, ss.ID)
		}
		lastID = ss.ID
	}
	// The same schema again is the same version, not a new one.
	ss, err := cl.CreateSchema(ctx, "nginx-access-value", avroOf(t, formats[3]))
	if err != nil || ss.Version != 4 || ss.ID != lastID {
		t.Fatalf("registering the latest again: %+v, %v", ss, err)
	}
}

// TestIncompatibleIs409: a change readers cannot follow (a field's type
// changes from string to long) is refused with 409 under BACKWARD, and
// allowed under NONE; the compatibility endpoint says the same without
// registering.
func TestIncompatibleIs409(t *testing.T) {
	reg, cl := serve(t)
	ctx := context.Background()
	old := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"access","namespace":"nginx_shipper","fields":[{"name":"status","type":["null","string"],"default":null}]}`}
	if _, err := cl.CreateSchema(ctx, "s-value", old); err != nil {
		t.Fatal(err)
	}
	ours := avroOf(t, "combined") // status is ["null","long"]
	res, err := cl.CheckCompatibility(ctx, "s-value", -1, ours)
	if err != nil || res.Is || len(res.Messages) == 0 {
		t.Fatalf("compatibility check: %+v, %v; want not compatible with reasons", res, err)
	}
	_, err = cl.CreateSchema(ctx, "s-value", ours)
	re := responseError(t, err)
	if re.StatusCode != http.StatusConflict || re.ErrorCode != 409 || !strings.Contains(re.Message, "status") {
		t.Fatalf("registering: %d %d %q; want 409 naming the field", re.StatusCode, re.ErrorCode, re.Message)
	}
	if vs, _ := cl.SubjectVersions(ctx, "s-value"); len(vs) != 1 {
		t.Fatalf("versions after a refused registration: %v", vs)
	}
	if err := reg.SetCompat("s-value", sr.CompatNone); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateSchema(ctx, "s-value", ours); err != nil {
		t.Fatalf("under NONE: %v", err)
	}
}

// TestForward: FORWARD checks the other direction: removing a field that
// old readers require (no default) is refused.
func TestForward(t *testing.T) {
	_, cl := serve(t, srfake.WithGlobalCompat(sr.CompatForward))
	ctx := context.Background()
	v1 := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"r","fields":[{"name":"a","type":"string"}]}`}
	v2 := sr.Schema{Type: sr.TypeAvro, Schema: `{"type":"record","name":"r","fields":[]}`}
	if _, err := cl.CreateSchema(ctx, "f", v1); err != nil {
		t.Fatal(err)
	}
	_, err := cl.CreateSchema(ctx, "f", v2)
	if re := responseError(t, err); re.StatusCode != http.StatusConflict {
		t.Fatalf("FORWARD, required field removed: %d %s", re.StatusCode, re.Message)
	}
}

// TestInvalidIs422: a schema that is not Avro is refused with 422, error
// code 42201, before srfake stores it.
func TestInvalidIs422(t *testing.T) {
	_, cl := serve(t)
	for _, bad := range []string{`{"type":"record","name":"r","fields":[{"name":"a","type":"nosuchtype"}]}`, `not json`,
		`{"type":"record","name":"r","fields":[{"name":"1a","type":"string"}]}`} {
		_, err := cl.CreateSchema(context.Background(), "x", sr.Schema{Type: sr.TypeAvro, Schema: bad})
		re := responseError(t, err)
		if re.StatusCode != http.StatusUnprocessableEntity || re.ErrorCode != 42201 {
			t.Fatalf("%s: %d %d %q; want 422 42201", bad, re.StatusCode, re.ErrorCode, re.Message)
		}
	}
	if subs, _ := cl.Subjects(context.Background()); len(subs) != 0 {
		t.Fatalf("subjects after invalid schemas: %v", subs)
	}
}
