// Package avrotest helps tests compare Avro events with the JSON events
// they stand for. It is for tests only.
package avrotest

import (
	"fmt"
	"strings"
	"time"
)

// ToJSON turns a record decoded by twmb/avro (into any) back into the
// JSON event it stands for: nulls left out, timestamp-millis and its
// "_offset" rebuilt as the RFC 3339 string the JSON writes, Avro names
// back to JSON keys ("_1" is "1"), numbers float64 as encoding/json
// decodes them. A time without its offset field is an error.
func ToJSON(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if e == nil || strings.HasSuffix(k, "_offset") && k != "log_offset" {
				continue
			}
			if ts, ok := e.(time.Time); ok {
				off, ok := x[k+"_offset"].(int32)
				if !ok {
					return nil, fmt.Errorf("%s without %s_offset: %v", k, k, x)
				}
				out[k] = ts.In(time.FixedZone("", int(off)*60)).Format("2006-01-02T15:04:05.000-07:00")
				continue
			}
			j, err := ToJSON(e)
			if err != nil {
				return nil, err
			}
			out[strings.TrimPrefix(k, "_")] = j
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := ToJSON(e)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	}
	return v, nil
}
