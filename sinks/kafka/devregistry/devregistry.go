// Package devregistry is a Confluent Schema Registry for tests, CI and the
// demo: franz-go's in-memory pkg/sr/srfake, made to check what the real
// registry checks. srfake stores any text and answers every compatibility
// question with true; here, before srfake sees a new version
// (POST /subjects/{subject}/versions) or a compatibility question
// (POST /compatibility/subjects/{subject}/versions[/{version}]):
//
//   - the Avro schema must parse (github.com/twmb/avro), else 422 with
//     error code 42201, as the real registry answers;
//   - a new version must be compatible with the subject's versions under
//     its compatibility level (the subject's, else the global one: BACKWARD
//     by default; NONE, BACKWARD, FORWARD, FULL and their _TRANSITIVE
//     forms), checked with twmb/avro's CheckCompatibility (Avro's schema
//     resolution rules), else 409 with error code 409 and the reason.
//
// Registering a schema equal to one the subject has is not a new version
// and is answered by srfake with the existing id, as the real registry does.
package devregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Registry is a checking registry; Handler serves it.
type Registry struct {
	*srfake.Registry
}

// New returns a registry with no subjects and the global level BACKWARD.
func New(opts ...srfake.Option) *Registry {
	r := &Registry{srfake.NewRegistry(opts...)}
	r.Intercept(r.intercept)
	return r
}

// errorBody is the registry's error answer.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": msg})
}

func (r *Registry) intercept(w http.ResponseWriter, req *http.Request) bool {
	if req.Method != http.MethodPost {
		return false
	}
	path := strings.TrimPrefix(req.URL.Path, "/")
	parts := strings.Split(path, "/")
	var subject, version string
	compat := false
	switch {
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		subject = parts[1]
	case len(parts) >= 4 && parts[0] == "compatibility" && parts[1] == "subjects" && parts[3] == "versions":
		subject, compat = parts[2], true
		if len(parts) == 5 {
			version = parts[4]
		}
	default:
		return false
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return false
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var s sr.Schema
	if err := json.Unmarshal(body, &s); err != nil {
		writeError(w, http.StatusUnprocessableEntity, 42201, "Invalid schema: "+err.Error())
		return true
	}
	if s.Type != sr.TypeAvro {
		return false // srfake handles the other types as it does
	}
	next, err := avro.Parse(s.Schema)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, 42201, "Invalid schema "+clip(s.Schema)+": "+err.Error())
		return true
	}
	against, level, err := r.existing(subject, version, compat)
	if err != nil {
		writeError(w, http.StatusNotFound, 40402, err.Error())
		return true
	}
	var msgs []string
	for _, old := range against {
		if old.Schema.Schema == s.Schema {
			continue
		}
		prev, err := avro.Parse(old.Schema.Schema)
		if err != nil {
			continue
		}
		if m := check(level, prev, next); m != "" {
			msgs = append(msgs, fmt.Sprintf("version %d: %s", old.Version, m))
		}
	}
	if compat {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		json.NewEncoder(w).Encode(map[string]any{"is_compatible": len(msgs) == 0, "messages": msgs})
		return true
	}
	if len(msgs) > 0 && !r.registered(subject, s) {
		writeError(w, http.StatusConflict, 409, fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q (compatibility %s), details: [%s]",
			subject, level, strings.Join(msgs, "; ")))
		return true
	}
	return false // srfake stores it
}

// registered reports whether subject already holds s (registering it again
// is a lookup, whatever the level says).
func (r *Registry) registered(subject string, s sr.Schema) bool {
	b, _ := json.Marshal(s)
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/subjects/"+subject, bytes.NewReader(b)))
	return rec.Code == http.StatusOK
}

// existing returns the versions a new schema of subject is checked
// against and the level: the latest (or the given version) for the
// non-transitive levels, every version for the transitive ones.
func (r *Registry) existing(subject, version string, compatEndpoint bool) ([]sr.SubjectSchema, sr.CompatibilityLevel, error) {
	level := sr.CompatBackward
	var cfg struct {
		Level sr.CompatibilityLevel `json:"compatibilityLevel"`
	}
	if r.get("/config/"+subject, &cfg) == nil {
		level = cfg.Level
	}
	var vers []int
	if err := r.get("/subjects/"+subject+"/versions", &vers); err != nil || len(vers) == 0 {
		if compatEndpoint && version != "" {
			return nil, level, fmt.Errorf("Subject '%s' not found.", subject)
		}
		return nil, level, nil
	}
	pick := vers
	switch {
	case version != "" && version != "latest" && version != "-1":
		v, err := strconv.Atoi(version)
		if err != nil {
			return nil, level, fmt.Errorf("Version %s not found.", version)
		}
		pick = []int{v}
	case !transitive(level):
		pick = vers[len(vers)-1:]
	}
	var out []sr.SubjectSchema
	for _, v := range pick {
		var ss sr.SubjectSchema
		if err := r.get(fmt.Sprintf("/subjects/%s/versions/%d", subject, v), &ss); err != nil {
			return nil, level, fmt.Errorf("Version %d not found.", v)
		}
		out = append(out, ss)
	}
	return out, level, nil
}

// get asks srfake's own REST API, in process.
func (r *Registry) get(path string, v any) error {
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		return fmt.Errorf("%s: %d", path, rec.Code)
	}
	return json.Unmarshal(rec.Body.Bytes(), v)
}

func transitive(l sr.CompatibilityLevel) bool {
	switch l {
	case sr.CompatBackwardTransitive, sr.CompatForwardTransitive, sr.CompatFullTransitive:
		return true
	}
	return false
}

// check returns why next may not follow prev under level, or "".
// BACKWARD: consumers using next read data written with prev; FORWARD:
// consumers using prev read data written with next; FULL: both.
func check(level sr.CompatibilityLevel, prev, next *avro.Schema) string {
	var errs []string
	switch level {
	case sr.CompatBackward, sr.CompatBackwardTransitive, sr.CompatFull, sr.CompatFullTransitive:
		if err := avro.CheckCompatibility(prev, next); err != nil {
			errs = append(errs, "READER_CANNOT_READ_OLD_DATA (backward): "+err.Error())
		}
	}
	switch level {
	case sr.CompatForward, sr.CompatForwardTransitive, sr.CompatFull, sr.CompatFullTransitive:
		if err := avro.CheckCompatibility(next, prev); err != nil {
			errs = append(errs, "OLD_READER_CANNOT_READ_NEW_DATA (forward): "+err.Error())
		}
	}
	return strings.Join(errs, "; ")
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
