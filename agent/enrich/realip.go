package enrich

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trusted is a set of trusted proxy ranges, as nginx's set_real_ip_from.
type Trusted struct {
	v4, v6 []netip.Prefix
}

// ParseTrusted parses trusted_proxies entries: an address (a /32 or /128)
// or a CIDR. As nginx, bits below the mask are ignored (10.1.2.3/8 is
// 10.0.0.0/8). The error names the entry.
func ParseTrusted(entries []string) (Trusted, error) {
	var t Trusted
	for i, e := range entries {
		s := strings.TrimSpace(e)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			pp, err := netip.ParsePrefix(s)
			if err != nil {
				return Trusted{}, fmt.Errorf("trusted_proxies[%d] = %q: not an address or CIDR", i, e)
			}
			p = pp
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return Trusted{}, fmt.Errorf("trusted_proxies[%d] = %q: not an address or CIDR", i, e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" {
			return Trusted{}, fmt.Errorf("trusted_proxies[%d] = %q: an address zone is not allowed", i, e)
		}
		p = p.Masked()
		// nginx keeps an IPv4-mapped IPv6 range as IPv6, and a mapped peer
		// address is matched against the IPv4 ranges: such a range never
		// matches. Take it as the IPv4 range it spells, which is what its
		// writer means.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Addr().Is4() {
			t.v4 = append(t.v4, p)
		} else {
			t.v6 = append(t.v6, p)
		}
	}
	return t, nil
}

// Contains reports whether a is in the set, as ngx_cidr_match: an
// IPv4-mapped IPv6 address is matched against the IPv4 ranges.
func (t *Trusted) Contains(a netip.Addr) bool {
	if a.Is4In6() {
		a = a.Unmap()
	}
	list := t.v6
	if a.Is4() {
		list = t.v4
	}
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Empty reports whether no range is trusted.
func (t *Trusted) Empty() bool { return len(t.v4) == 0 && len(t.v6) == 0 }

// ClientIP returns the client address of a request whose connection came
// from remote and that carried header (the value of client_ip_header as
// logged; nil when absent), walking the header from the right past trusted
// proxies exactly as nginx's realip module with real_ip_recursive on
// (ngx_http_get_forwarded_addr_internal). ok is false when remote is not
// an address (then nothing is known). It does not allocate.
func ClientIP(remote, header []byte, t *Trusted) (_ netip.Addr, ok bool) {
	addr, ok := parseAddrPort(remote)
	if !ok {
		return netip.Addr{}, false
	}
	xff := header
	n := len(xff) // xfflen
	for n > 0 {
		if !t.Contains(addr) {
			break
		}
		// Skip trailing separators (never index 0, as nginx's p > xff).
		p := n - 1
		for ; p > 0; p-- {
			if xff[p] != ' ' && xff[p] != ',' {
				break
			}
			n--
		}
		// Find the start of the last entry.
		for ; p > 0; p-- {
			if xff[p] == ' ' || xff[p] == ',' {
				p++
				break
			}
		}
		a, ok := parseAddrPort(xff[p:n])
		if !ok {
			break // NGX_DONE or NGX_DECLINED: addr stays
		}
		addr = a
		if p == 0 {
			break
		}
		n = p - 1
	}
	return addr, true
}

// parseAddrPort parses an address as nginx's ngx_parse_addr_port: an IPv4
// or IPv6 address, optionally followed by :port (1-65535), an IPv6 address
// with a port written [addr]:port. "[::1]" without a port is rejected, as
// by nginx.
func parseAddrPort(b []byte) (netip.Addr, bool) {
	if a, ok := parseAddr(b); ok {
		return a, true
	}
	var host []byte
	if len(b) > 0 && b[0] == '[' {
		j := indexByte(b, ']')
		if j < 0 || j == len(b)-1 || b[j+1] != ':' {
			return netip.Addr{}, false
		}
		host, b = b[1:j], b[j+2:]
	} else {
		j := indexByte(b, ':')
		if j < 0 {
			return netip.Addr{}, false
		}
		host, b = b[:j], b[j+1:]
	}
	port, ok := atoi(b)
	if !ok || port < 1 || port > 65535 {
		return netip.Addr{}, false
	}
	return parseAddr(host)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// atoi is ngx_atoi: decimal digits only, at least one, no overflow.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseAddr is ngx_parse_addr: IPv4 as ngx_inet_addr, else IPv6 as
// ngx_inet6_addr.
func parseAddr(b []byte) (netip.Addr, bool) {
	if v, ok := inetAddr(b); ok {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
	}
	var a [16]byte
	if inet6Addr(b, &a) {
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// inetAddr is ngx_inet_addr: four dot-separated decimal octets of at most
// 255 each. As nginx, leading zeros are decimal ("010" is 10), an empty
// octet is 0, and 255.255.255.255 is rejected (it is INADDR_NONE).
func inetAddr(b []byte) (uint32, bool) {
	var addr, octet uint32
	n := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			octet = octet*10 + uint32(c-'0')
			if octet > 255 {
				return 0, false
			}
		case c == '.':
			addr = addr<<8 + octet
			octet = 0
			n++
		default:
			return 0, false
		}
	}
	if n != 3 {
		return 0, false
	}
	addr = addr<<8 + octet
	if addr == 0xffffffff {
		return 0, false
	}
	return addr, true
}

// inet6Addr is ngx_inet6_addr: eight groups of up to four hex digits, one
// "::" for a run of zero groups, optionally an IPv4 address in the last 32
// bits. No zone, no brackets.
func inet6Addr(p []byte, out *[16]byte) bool {
	if len(p) == 0 {
		return false
	}
	var addr [16]byte
	ai := 0     // next byte of addr
	zero := -1  // where "::" was, as an index into addr
	digit := -1 // start of the current group in p
	nibbles, word := 0, uint32(0)
	n := 8
	i := 0
	if p[0] == ':' {
		i++
	}
	for ; i < len(p); i++ {
		c := p[i]
		if c == ':' {
			if nibbles > 0 {
				digit = i + 1
				addr[ai], addr[ai+1] = byte(word>>8), byte(word)
				ai += 2
				n--
				if n > 0 {
					nibbles, word = 0, 0
					continue
				}
			} else if zero < 0 {
				digit = i + 1
				zero = ai
				continue
			}
			return false
		}
		if c == '.' && nibbles > 0 {
			if n < 2 || digit < 0 {
				return false
			}
			v, ok := inetAddr(p[digit:])
			if !ok {
				return false
			}
			addr[ai], addr[ai+1], addr[ai+2], addr[ai+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
			ai += 4
			n -= 2
			return finish6(&addr, ai, zero, n, out)
		}
		nibbles++
		if nibbles > 4 {
			return false
		}
		if c >= '0' && c <= '9' {
			word = word*16 + uint32(c-'0')
			continue
		}
		c |= 0x20
		if c >= 'a' && c <= 'f' {
			word = word*16 + uint32(c-'a') + 10
			continue
		}
		return false
	}
	if nibbles == 0 && zero < 0 {
		return false
	}
	// The last group; nginx writes it even when empty after "::".
	addr[ai], addr[ai+1] = byte(word>>8), byte(word)
	ai += 2
	n--
	return finish6(&addr, ai, zero, n, out)
}

// finish6 expands "::" (zero) to the n missing groups, as the tail of
// ngx_inet6_addr.
func finish6(addr *[16]byte, ai, zero, n int, out *[16]byte) bool {
	if n > 0 {
		if zero < 0 {
			return false
		}
		shift := n * 2
		copy(addr[zero+shift:], addr[zero:ai])
		for k := zero; k < zero+shift; k++ {
			addr[k] = 0
		}
		*out = *addr
		return true
	}
	if n < 0 || zero >= 0 {
		return false
	}
	*out = *addr
	return true
}
