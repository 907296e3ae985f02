package s3

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/nginx-shipper/nginx-shipper/parser"
)

// Object formats ([sinks.s3] format) and Parquet codecs
// (parquet_compression).
const (
	FormatJSON    = "json"
	FormatParquet = "parquet"

	ParquetZstd   = "zstd"
	ParquetSnappy = "snappy"
)

// InputSchema is the event schema of one input (sinks.Source.Input), for
// format = "parquet". See UseSchemas.
type InputSchema struct {
	Input  int
	Schema parser.Schema
}

// pqField is one top-level (or record member) field of the Parquet plan:
// where its JSON value goes in the row.
type pqField struct {
	name  string
	typ   parser.Type
	items parser.Type
	col   int // its first leaf column; a timestamp has two (millis, offset)
	// members of a TypeRecord, and their index by JSON name.
	members []pqField
	index   map[string]int
}

// pqPlan is the Parquet schema of a parser.Schema and the column of every
// JSON field. Built once per batch; read-only afterwards.
type pqPlan struct {
	schema *parquet.Schema
	fields []pqField
	index  map[string]int
	ncols  int
}

// newPQPlan maps the event schema to Parquet, fields in the order of the
// JSON: strings (UTF8, dictionary-encoded), int64, double, boolean, the
// timestamp as TIMESTAMP(MILLIS, isAdjustedToUTC) followed by
// <name>_offset INT32 (the UTC offset nginx wrote, minutes east, as in the
// Avro schema), arrays as LIST of optional items, header records as groups
// of strings. Every column is optional.
func newPQPlan(s parser.Schema) *pqPlan {
	p := &pqPlan{index: map[string]int{}}
	var root pqGroup
	col := 0
	for _, f := range s.Fields {
		pf := pqField{name: f.Name, typ: f.Type, items: f.Items, col: col}
		switch f.Type {
		case parser.TypeTimestamp:
			root = append(root, pqNamed{parquet.Optional(parquet.Timestamp(parquet.Millisecond)), f.Name},
				pqNamed{parquet.Optional(parquet.Int(32)), f.Name + "_offset"})
			col += 2
		case parser.TypeArray:
			root = append(root, pqNamed{parquet.Optional(parquet.List(parquet.Optional(pqLeaf(f.Items)))), f.Name})
			col++
		case parser.TypeRecord:
			var g pqGroup
			pf.index = map[string]int{}
			for _, m := range f.Fields {
				pf.index[m.Name] = len(pf.members)
				pf.members = append(pf.members, pqField{name: m.Name, typ: m.Type, col: col})
				g = append(g, pqNamed{parquet.Optional(pqLeaf(m.Type)), m.Name})
				col++
			}
			root = append(root, pqNamed{parquet.Optional(g), f.Name})
		default:
			root = append(root, pqNamed{parquet.Optional(pqLeaf(f.Type)), f.Name})
			col++
		}
		p.index[f.Name] = len(p.fields)
		p.fields = append(p.fields, pf)
	}
	p.ncols = col
	p.schema = parquet.NewSchema(s.Name, root)
	return p
}

func pqLeaf(t parser.Type) parquet.Node {
	switch t {
	case parser.TypeLong:
		return parquet.Int(64)
	case parser.TypeDouble:
		return parquet.Leaf(parquet.DoubleType)
	case parser.TypeBoolean:
		return parquet.Leaf(parquet.BooleanType)
	}
	// Strings repeat (methods, hosts, user agents): a dictionary, which
	// the writer drops for PLAIN in a column whose dictionary outgrows
	// pqDictMaxBytes (request ids, URIs).
	return parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
}

// pqGroup is a Parquet group whose fields keep the order given (the JSON's),
// where parquet.Group sorts them by name.
type pqGroup []pqNamed

type pqNamed struct {
	parquet.Node
	name string
}

func (f pqNamed) Name() string                      { return f.name }
func (f pqNamed) Value(reflect.Value) reflect.Value { return reflect.Value{} }

var groupType = parquet.Group{}.Type()

func (g pqGroup) ID() int            { return 0 }
func (g pqGroup) String() string     { return fmt.Sprintf("group(%d fields)", len(g)) }
func (g pqGroup) Type() parquet.Type { return groupType }
func (g pqGroup) Optional() bool     { return false }
func (g pqGroup) Repeated() bool     { return false }
func (g pqGroup) Required() bool     { return true }
func (g pqGroup) Leaf() bool         { return false }
func (g pqGroup) Fields() []parquet.Field {
	fs := make([]parquet.Field, len(g))
	for i := range g {
		fs[i] = g[i]
	}
	return fs
}
func (g pqGroup) Encoding() encoding.Encoding { return nil }
func (g pqGroup) Compression() compress.Codec { return nil }
func (g pqGroup) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

const (
	// pqDictMaxBytes bounds a column's dictionary in a row group; past it
	// the column goes on PLAIN.
	pqDictMaxBytes = 1 << 20
	// pqChunk is how much decompressed NDJSON is turned into rows at once.
	pqChunk = 1 << 20
	// pqPageBytes is the size of a data page before compression
	// (parquet-go's default).
	pqPageBytes = 256 << 10
)

// errTornLine is a batch that does not end with a newline (never written
// so by the committer).
var errTornLine = errors.New("last line has no newline")

// pqConverter turns NDJSON event lines into Parquet rows. Not safe for
// concurrent use; each uploader has its own, reused across batches.
type pqConverter struct {
	plan    *pqPlan
	spans   [][]byte // the raw JSON value of each top field in the line; nil: absent
	sub     [][]byte // the same for a record's members
	arena   []byte   // unescaped strings of the current chunk
	vals    []parquet.Value
	rows    []parquet.Row
	dropped int64 // JSON values without a column, or of the wrong type
}

func (c *pqConverter) reset(plan *pqPlan) {
	c.plan = plan
	c.spans = make([][]byte, len(plan.fields))
	c.dropped = 0
}

// addLine parses one JSON event line into a row appended to c.rows. Its
// byte-array values point into line or c.arena: both must stay until the
// rows are written.
func (c *pqConverter) addLine(line []byte) error {
	clear(c.spans)
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return errors.New("not a JSON object")
	}
	i++
	guess := 0 // the JSON has the schema's order: try the next field before the map
	for {
		i = skipWS(line, i)
		if i < len(line) && line[i] == '}' {
			break
		}
		key, next, err := c.readKey(line, i)
		if err != nil {
			return err
		}
		start := skipWS(line, next)
		end, err := skipValue(line, start)
		if err != nil {
			return err
		}
		k, ok := guess, guess < len(c.plan.fields) && c.plan.fields[guess].name == string(key)
		if !ok {
			k, ok = c.plan.index[string(key)]
		}
		if ok {
			c.spans[k] = line[start:end]
			guess = k + 1
		} else {
			c.dropped++
		}
		i = skipWS(line, end)
		if i < len(line) && line[i] == ',' {
			i++
			continue
		}
		if i < len(line) && line[i] == '}' {
			break
		}
		return fmt.Errorf("bad JSON at byte %d", i)
	}
	if j := skipWS(line, i+1); j != len(line) {
		return fmt.Errorf("bad JSON: text after the object at byte %d", j)
	}
	start := len(c.vals)
	for k := range c.plan.fields {
		c.emit(&c.plan.fields[k], c.spans[k])
	}
	c.rows = append(c.rows, c.vals[start:len(c.vals):len(c.vals)])
	return nil
}

// readKey reads `"key":` at i; it returns the key and the index after ':'.
func (c *pqConverter) readKey(b []byte, i int) (key []byte, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, fmt.Errorf("bad JSON key at byte %d", i)
	}
	end, err := skipString(b, i)
	if err != nil {
		return nil, 0, err
	}
	key, ok := c.str(b[i:end])
	if !ok {
		return nil, 0, fmt.Errorf("bad JSON key at byte %d", i)
	}
	j := skipWS(b, end)
	if j >= len(b) || b[j] != ':' {
		return nil, 0, fmt.Errorf("no ':' at byte %d", j)
	}
	return key, j + 1, nil
}

func isNull(v []byte) bool { return v == nil || string(v) == "null" }

// emit appends the values of field f (leaf columns from f.col) for the JSON
// value v (nil when absent).
func (c *pqConverter) emit(f *pqField, v []byte) {
	switch f.typ {
	case parser.TypeTimestamp:
		if !isNull(v) {
			if s, ok := c.str(v); ok {
				if ms, off, ok := parseTimestamp(s); ok {
					c.vals = append(c.vals, parquet.Int64Value(ms).Level(0, 1, f.col),
						parquet.Int32Value(off).Level(0, 1, f.col+1))
					return
				}
			}
			c.dropped++
		}
		c.vals = append(c.vals, parquet.NullValue().Level(0, 0, f.col), parquet.NullValue().Level(0, 0, f.col+1))
	case parser.TypeRecord:
		if isNull(v) || !c.record(f, v) {
			if !isNull(v) {
				c.dropped++
			}
			for _, m := range f.members {
				c.vals = append(c.vals, parquet.NullValue().Level(0, 0, m.col))
			}
		}
	case parser.TypeArray:
		if isNull(v) || !c.list(f, v) {
			if !isNull(v) {
				c.dropped++
			}
			c.vals = append(c.vals, parquet.NullValue().Level(0, 0, f.col))
		}
	default:
		if !isNull(v) {
			if pv, ok := c.scalar(f.typ, v); ok {
				c.vals = append(c.vals, pv.Level(0, 1, f.col))
				return
			}
			c.dropped++
		}
		c.vals = append(c.vals, parquet.NullValue().Level(0, 0, f.col))
	}
}

// record emits the members of a header record from its JSON object v. It
// returns false, having emitted nothing, when v is not an object.
func (c *pqConverter) record(f *pqField, v []byte) bool {
	if cap(c.sub) < len(f.members) {
		c.sub = make([][]byte, len(f.members))
	}
	sub := c.sub[:len(f.members)]
	clear(sub)
	if v[0] != '{' {
		return false
	}
	i := 1
	for {
		i = skipWS(v, i)
		if i < len(v) && v[i] == '}' {
			break
		}
		key, next, err := c.readKey(v, i)
		if err != nil {
			return false
		}
		start := skipWS(v, next)
		end, err := skipValue(v, start)
		if err != nil {
			return false
		}
		if k, ok := f.index[string(key)]; ok {
			sub[k] = v[start:end]
		} else {
			c.dropped++
		}
		i = skipWS(v, end)
		if i < len(v) && v[i] == ',' {
			i++
			continue
		}
		if i < len(v) && v[i] == '}' {
			break
		}
		return false
	}
	for k := range f.members {
		m := &f.members[k]
		if !isNull(sub[k]) {
			if pv, ok := c.scalar(m.typ, sub[k]); ok {
				c.vals = append(c.vals, pv.Level(0, 2, m.col))
				continue
			}
			c.dropped++
		}
		c.vals = append(c.vals, parquet.NullValue().Level(0, 1, m.col))
	}
	return true
}

// list emits the items of a JSON array v (definition levels: 1 empty list,
// 2 null item, 3 item). It returns false, having emitted nothing, when v is
// not an array.
func (c *pqConverter) list(f *pqField, v []byte) bool {
	if v[0] != '[' {
		return false
	}
	mark := len(c.vals)
	i := skipWS(v, 1)
	if i < len(v) && v[i] == ']' {
		c.vals = append(c.vals, parquet.NullValue().Level(0, 1, f.col))
		return true
	}
	rep := 0
	for {
		start := skipWS(v, i)
		end, err := skipValue(v, start)
		if err != nil {
			c.vals = c.vals[:mark]
			return false
		}
		item := v[start:end]
		pv, ok := parquet.Value{}, false
		if !isNull(item) {
			if pv, ok = c.scalar(f.items, item); !ok {
				c.dropped++
			}
		}
		if ok {
			c.vals = append(c.vals, pv.Level(rep, 3, f.col))
		} else {
			c.vals = append(c.vals, parquet.NullValue().Level(rep, 2, f.col))
		}
		rep = 1
		i = skipWS(v, end)
		if i < len(v) && v[i] == ',' {
			i++
			continue
		}
		if i < len(v) && v[i] == ']' {
			return true
		}
		c.vals = c.vals[:mark]
		return false
	}
}

// scalar converts a JSON scalar to the Parquet value of type t.
func (c *pqConverter) scalar(t parser.Type, v []byte) (parquet.Value, bool) {
	switch t {
	case parser.TypeLong:
		n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(v), len(v)), 10, 64)
		return parquet.Int64Value(n), err == nil
	case parser.TypeDouble:
		x, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(v), len(v)), 64)
		return parquet.DoubleValue(x), err == nil
	case parser.TypeBoolean:
		switch string(v) {
		case "true":
			return parquet.BooleanValue(true), true
		case "false":
			return parquet.BooleanValue(false), true
		}
		return parquet.Value{}, false
	}
	s, ok := c.str(v)
	if !ok {
		return parquet.Value{}, false
	}
	return parquet.ByteArrayValue(s), true
}

// str decodes the JSON string v (quotes included): the bytes inside the
// quotes when there is no escape, else the unescaped text in c.arena.
func (c *pqConverter) str(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	in := v[1 : len(v)-1]
	bs := -1
	for i, ch := range in {
		if ch == '\\' {
			bs = i
			break
		}
	}
	if bs < 0 {
		return in, true
	}
	start := len(c.arena)
	c.arena = append(c.arena, in[:bs]...)
	for i := bs; i < len(in); i++ {
		ch := in[i]
		if ch != '\\' {
			c.arena = append(c.arena, ch)
			continue
		}
		i++
		if i >= len(in) {
			return nil, false
		}
		switch in[i] {
		case '"', '\\', '/':
			c.arena = append(c.arena, in[i])
		case 'b':
			c.arena = append(c.arena, '\b')
		case 'f':
			c.arena = append(c.arena, '\f')
		case 'n':
			c.arena = append(c.arena, '\n')
		case 'r':
			c.arena = append(c.arena, '\r')
		case 't':
			c.arena = append(c.arena, '\t')
		case 'u':
			r, n := hex4(in[i+1:])
			if n < 0 {
				return nil, false
			}
			i += 4
			if utf16IsSurrogate(r) {
				if i+6 < len(in)+0 && in[i+1] == '\\' && in[i+2] == 'u' {
					if r2, n2 := hex4(in[i+3:]); n2 >= 0 && r2 >= 0xDC00 && r2 < 0xE000 && r < 0xDC00 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			c.arena = utf8.AppendRune(c.arena, r)
		default:
			return nil, false
		}
	}
	return c.arena[start:len(c.arena):len(c.arena)], true
}

func utf16IsSurrogate(r rune) bool { return r >= 0xD800 && r < 0xE000 }

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, -1
	}
	var r rune
	for _, ch := range b[:4] {
		switch {
		case ch >= '0' && ch <= '9':
			r = r<<4 | rune(ch-'0')
		case ch >= 'a' && ch <= 'f':
			r = r<<4 | rune(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			r = r<<4 | rune(ch-'A'+10)
		default:
			return 0, -1
		}
	}
	return r, 4
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i] ('"').
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated JSON string")
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("JSON value expected")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated JSON object or array")
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("JSON value expected at byte %d", i)
	}
	return j, nil
}

// parseTimestamp reads the event's RFC 3339 time
// (2006-01-02T15:04:05.000-07:00 or ...Z, any number of fraction digits)
// without allocating: Unix milliseconds and the offset in minutes east.
func parseTimestamp(s []byte) (ms int64, offMin int32, ok bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return pqParseSlow(s)
	}
	num := func(a, b int) (int, bool) {
		n := 0
		for _, ch := range s[a:b] {
			if ch < '0' || ch > '9' {
				return 0, false
			}
			n = n*10 + int(ch-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 {
		return pqParseSlow(s)
	}
	i := 19
	frac, scale := 0, 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if scale < 3 {
				frac = frac*10 + int(s[i]-'0')
				scale++
			}
			i++
		}
	}
	for ; scale < 3; scale++ {
		frac *= 10
	}
	var off int
	switch {
	case i == len(s)-1 && (s[i] == 'Z' || s[i] == 'z'):
	case i == len(s)-6 && (s[i] == '+' || s[i] == '-') && s[i+3] == ':':
		oh, okh := num(i+1, i+3)
		om, okm := num(i+4, i+6)
		if !okh || !okm {
			return pqParseSlow(s)
		}
		off = oh*60 + om
		if s[i] == '-' {
			off = -off
		}
	default:
		return pqParseSlow(s)
	}
	days := daysFromCivil(y, mo, d)
	secs := days*86400 + int64(h*3600+mi*60+sec) - int64(off*60)
	return secs*1000 + int64(frac), int32(off), true
}

// daysFromCivil is the days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func pqParseSlow(s []byte) (int64, int32, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return 0, 0, false
	}
	_, off := t.Zone()
	return t.UnixMilli(), int32(off / 60), true
}

// pqOptions are the writer options of a Parquet object.
type pqOptions struct {
	codec         string // ParquetZstd or ParquetSnappy
	rowGroupBytes int64  // uncompressed NDJSON bytes per row group
}

func (o pqOptions) codecOf() compress.Codec {
	if o.codec == ParquetSnappy {
		return &snappy.Codec{}
	}
	return pqZstd
}

// zstdCodec is parquet-go's zstd codec with one encoder for the process
// and a window of one page: parquet-go's own makes encoders with an 8 MiB
// window (tens of MiB of history while converting), where a page (256 KiB)
// is compressed alone anyway.
type zstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var pqZstd = func() zstdCodec {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2), zstd.WithWindowSize(pqPageBytes),
		zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		panic(err)
	}
	return zstdCodec{enc: enc, dec: dec}
}()

func (zstdCodec) String() string                            { return "ZSTD" }
func (zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }
func (c zstdCodec) Encode(dst, src []byte) ([]byte, error)  { return c.enc.EncodeAll(src, dst[:0]), nil }
func (c zstdCodec) Decode(dst, src []byte) ([]byte, error)  { return c.dec.DecodeAll(src, dst[:0]) }

// pqResult is a converted object.
type pqResult struct {
	size     int64
	crc      uint32
	rows     int64
	groups   int
	dropped  int64
	rawBytes int64
}

// convert reads the gzip NDJSON batch src and writes the Parquet object to
// dst, streaming: pqChunk of lines at a time become rows, and a row group is
// flushed every rowGroupBytes of NDJSON, so memory is bounded by one row
// group (compressed pages) plus one chunk, whatever the object's size. The
// caller fsyncs and closes dst.
func (c *pqConverter) convert(plan *pqPlan, src io.Reader, dst io.Writer, o pqOptions) (pqResult, error) {
	var res pqResult
	c.reset(plan)
	zr, err := gzip.NewReader(src)
	if err != nil {
		return res, fmt.Errorf("gunzip: %w", err)
	}
	defer zr.Close()
	crc := crc32.NewIEEE()
	cw := &countingWriter{w: io.MultiWriter(dst, crc)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	w := parquet.NewWriter(bw, plan.schema,
		parquet.Compression(o.codecOf()),
		parquet.DataPageVersion(1), // read by every engine (older Hive and Spark too)
		parquet.DictionaryMaxBytes(pqDictMaxBytes),
		parquet.PageBufferSize(pqPageBytes),
		parquet.CreatedBy("nginx-shipper", "", ""),
	)
	buf := make([]byte, pqChunk)
	n := 0
	var inGroup int64
	for eof := false; !eof; {
		m, rerr := io.ReadFull(zr, buf[n:])
		n += m
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			eof = true
		} else if rerr != nil {
			return res, fmt.Errorf("gunzip: %w", rerr)
		}
		data := buf[:n]
		c.rows, c.vals, c.arena = c.rows[:0], c.vals[:0], c.arena[:0]
		for {
			i := indexNL(data)
			if i < 0 {
				break
			}
			line := data[:i]
			data = data[i+1:]
			if len(line) == 0 {
				continue
			}
			if err := c.addLine(line); err != nil {
				return res, fmt.Errorf("line %d: %w", res.rows+int64(len(c.rows))+1, err)
			}
			inGroup += int64(i + 1)
			res.rawBytes += int64(i + 1)
			if inGroup >= o.rowGroupBytes {
				if err := c.write(w, &res); err != nil {
					return res, err
				}
				if err := w.Flush(); err != nil {
					return res, fmt.Errorf("parquet: %w", err)
				}
				res.groups++
				inGroup = 0
			}
		}
		if err := c.write(w, &res); err != nil {
			return res, err
		}
		rest := copy(buf, data)
		if eof && rest > 0 {
			return res, errTornLine
		}
		if rest == len(buf) { // one line longer than the buffer
			buf = append(buf, make([]byte, len(buf))...)
		}
		n = rest
	}
	if inGroup > 0 {
		res.groups++
	}
	if err := w.Close(); err != nil {
		return res, fmt.Errorf("parquet: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return res, err
	}
	res.size, res.crc, res.dropped = cw.n, crc.Sum32(), c.dropped
	return res, nil
}

// write hands the rows built so far to the writer, which copies them.
func (c *pqConverter) write(w *parquet.Writer, res *pqResult) error {
	if len(c.rows) == 0 {
		return nil
	}
	if _, err := w.WriteRows(c.rows); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	res.rows += int64(len(c.rows))
	clear(c.rows) // drop the references into the chunk
	c.rows, c.vals, c.arena = c.rows[:0], c.vals[:0], c.arena[:0]
	return nil
}

func indexNL(b []byte) int {
	for i, ch := range b {
		if ch == '\n' {
			return i
		}
	}
	return -1
}

// convertFile converts the spooled batch at src to a Parquet file at tmp
// (created, written, fsynced, closed). A crash midway leaves a torn tmp,
// which the next start deletes (it ends in .tmp); the batch is converted
// again at its upload.
func (c *pqConverter) convertFile(plan *pqPlan, src, tmp string, o pqOptions, create func(string) (io.WriteCloser, error)) (pqResult, error) {
	in, err := os.Open(src)
	if err != nil {
		return pqResult{}, err
	}
	defer in.Close()
	out, err := create(tmp)
	if err != nil {
		return pqResult{}, err
	}
	res, err := c.convert(plan, bufio.NewReaderSize(in, 256<<10), out, o)
	if err == nil {
		if f, ok := out.(interface{ Sync() error }); ok {
			err = f.Sync()
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("convert %s to parquet: %w", src, err)
	}
	return res, nil
}

// createFile is convertFile's default create.
func createFile(path string) (io.WriteCloser, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
}
