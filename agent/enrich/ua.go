package enrich

import (
	"bytes"

	useragent "github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"
)

// maxUALen is how much of a user agent is parsed and used as its cache
// key: real ones are under 300 bytes; a longer one is cut, so a hostile
// one costs at most this much per miss.
const maxUALen = 512

// UA is what is known of a user agent. Empty strings are unknown.
type UA struct {
	Browser, BrowserVersion, OS, OSVersion string
	Device                                 string // desktop, mobile, tablet, bot, other
	Bot                                    bool
}

// uaParser wraps medama-io/go-useragent (a trie built once; safe for
// concurrent use).
type uaParser struct{ p *useragent.Parser }

func newUAParser() uaParser { return uaParser{useragent.NewParser()} }

// Parse parses ua (cut to maxUALen by the caller).
func (u uaParser) Parse(ua []byte) UA {
	a := u.p.Parse(string(ua))
	r := UA{
		Browser:        string(a.Browser()),
		BrowserVersion: a.BrowserVersion(),
		OS:             string(a.OS()),
	}
	r.OSVersion = osVersion(a.OS(), ua)
	r.Bot = a.IsBot() || botToken(ua)
	switch {
	case r.Bot:
		r.Device = "bot"
	case a.IsTablet():
		r.Device = "tablet"
	case a.IsMobile():
		r.Device = "mobile"
		// Android phones say "Mobile"; Android without it is a tablet
		// (Google's documented convention for Chrome on Android).
		if a.OS() == agents.OSAndroid && !bytes.Contains(ua, []byte("Mobile")) {
			r.Device = "tablet"
		}
	case a.IsDesktop():
		r.Device = "desktop"
	default:
		r.Device = "other"
	}
	return r
}

// appendUA renders the "ua" member (with its leading comma).
func appendUA(dst []byte, u UA) []byte {
	dst = append(dst, `,"ua":{`...)
	n := len(dst)
	dst = appendStrMember(dst, n, "browser", u.Browser)
	dst = appendStrMember(dst, n, "browser_version", u.BrowserVersion)
	dst = appendStrMember(dst, n, "os", u.OS)
	dst = appendStrMember(dst, n, "os_version", u.OSVersion)
	dst = appendStrMember(dst, n, "device", u.Device)
	if len(dst) > n {
		dst = append(dst, ',')
	}
	if u.Bot {
		dst = append(dst, `"bot":true}`...)
	} else {
		dst = append(dst, `"bot":false}`...)
	}
	return dst
}

// appendUAAvro renders the Avro of the "ua" field (always the record:
// bot is always known).
func appendUAAvro(dst []byte, u UA) []byte {
	dst = append(dst, 2)
	dst = appendAvroOptString(dst, u.Browser)
	dst = appendAvroOptString(dst, u.BrowserVersion)
	dst = appendAvroOptString(dst, u.OS)
	dst = appendAvroOptString(dst, u.OSVersion)
	dst = appendAvroOptString(dst, u.Device)
	if u.Bot {
		return append(dst, 2, 1)
	}
	return append(dst, 2, 0)
}

// windowsVersions maps the NT version to the marketing name; NT 10.0 is
// Windows 10 or 11 and so is not listed.
var windowsVersions = map[string]string{
	"5.0": "2000", "5.1": "XP", "5.2": "XP", "6.0": "Vista", "6.1": "7", "6.2": "8", "6.3": "8.1",
}

// osVersion reads the version of the OS the parser matched from its token
// in the user agent; "" when the token has none.
func osVersion(os agents.OS, ua []byte) string {
	switch os {
	case agents.OSIOS:
		if v := versionAfter(ua, "iPhone OS "); v != "" {
			return v
		}
		return versionAfter(ua, "CPU OS ")
	case agents.OSMacOS:
		return versionAfter(ua, "Mac OS X ")
	case agents.OSAndroid:
		return versionAfter(ua, "Android ")
	case agents.OSWindows:
		return windowsVersions[versionAfter(ua, "Windows NT ")]
	case agents.OSChromeOS:
		i := bytes.Index(ua, []byte("CrOS "))
		if i < 0 {
			return ""
		}
		rest := ua[i+5:]
		j := bytes.IndexByte(rest, ' ') // the architecture
		if j < 0 {
			return ""
		}
		return versionAfter(rest[j:], " ")
	}
	return ""
}

// versionAfter returns the version (digits separated by '.' or '_',
// written with '.') that follows the first occurrence of tok.
func versionAfter(ua []byte, tok string) string {
	i := bytes.Index(ua, []byte(tok))
	if i < 0 {
		return ""
	}
	rest := ua[i+len(tok):]
	n := 0
	for n < len(rest) && n < 32 && (rest[n] >= '0' && rest[n] <= '9' || (rest[n] == '.' || rest[n] == '_') && n > 0) {
		n++
	}
	for n > 0 && (rest[n-1] == '.' || rest[n-1] == '_') {
		n--
	}
	if n == 0 {
		return ""
	}
	v := []byte(string(rest[:n]))
	for k, c := range v {
		if c == '_' {
			v[k] = '.'
		}
	}
	return string(v)
}

// botTokens mark crawlers and HTTP tools the parser does not flag
// (lower case, matched as substrings of the lower-cased user agent). They
// are specific enough not to match browsers ("bot" alone would match the
// CUBOT phone brand).
var botTokens = [][]byte{
	[]byte("bot/"), []byte("bot;"), []byte("bot)"), []byte("crawler"), []byte("spider"), []byte("+http"),
	[]byte("facebookexternalhit"), []byte("facebot"), []byte("slurp"),
	[]byte("curl/"), []byte("wget/"), []byte("python-requests"), []byte("python-urllib"), []byte("aiohttp"),
	[]byte("go-http-client"), []byte("okhttp"), []byte("apache-httpclient"), []byte("postmanruntime"),
	[]byte("axios/"), []byte("node-fetch"), []byte("undici"), []byte("libwww-perl"), []byte("java/"),
	[]byte("httpie"), []byte("scrapy"), []byte("headlesschrome"), []byte("ruby"), []byte("guzzlehttp"),
}

func botToken(ua []byte) bool {
	var buf [maxUALen]byte
	l := buf[:0]
	for _, c := range ua {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		l = append(l, c)
	}
	for _, t := range botTokens {
		if bytes.Contains(l, t) {
			return true
		}
	}
	return false
}
