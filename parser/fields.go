package parser

// Field access: the decoded value of one variable of a parsed line, for
// consumers of the event that need a value itself rather than the JSON
// (agent/enrich reads remote_addr, a forwarding header and the user
// agent). Additive: it reads what Parse left in the Result and changes
// nothing in it.

// FieldIndex returns the index of the variable that writes the named
// field, for AppendValue, or -1 when the format does not log it. name is
// the nginx variable name without $ ("remote_addr", "http_user_agent") or
// the event's field name ("request_headers.user_agent"). When the format
// logs a variable twice, the first occurrence (the one the event shows)
// is used.
func (p *Parser) FieldIndex(name string) int {
	c := p.impl
	for i := range c.vars {
		v := &c.vars[i]
		if !v.emit {
			continue
		}
		if name == v.name {
			return i
		}
		full := v.field()
		if v.group != gNone {
			full = groupNames[v.group] + "." + full
		}
		if name == full {
			return i
		}
	}
	return -1
}

// AppendValue appends to dst the decoded value (escapes undone as the
// format's escape says) of variable i in line, as matched by the last Parse
// of that line with r, which must have returned no error. ok is false, and
// dst is returned unchanged, when the value is absent as the event has it
// (nginx's "-", or an empty value where the event leaves it out) or i is
// not a variable of the format. It does not allocate when dst has room.
// Values are bytes as decoded: invalid UTF-8 is not replaced here.
func (p *Parser) AppendValue(dst, line []byte, r *Result, i int) (_ []byte, ok bool) {
	c := p.impl
	if i < 0 || i >= len(c.vars) || r == nil || i >= len(r.spans) {
		return dst, false
	}
	s := r.spans[i]
	if s.start < 0 || s.end > len(line) || s.start > s.end {
		return dst, false
	}
	b := line[s.start:s.end]
	if c.absent(i, b) {
		return dst, false
	}
	return c.decode(dst, b), true
}
