package rules

// Buffer names a byte buffer matches run on.
type Buffer uint8

// Buffers. BufPayload is the packet payload or, for stream-capable rules,
// the reassembled stream.
const (
	BufPayload Buffer = iota
	BufHTTPURI
	BufHTTPURIRaw
	BufHTTPMethod
	BufHTTPHost
	BufHTTPHostRaw
	BufHTTPHeader
	BufHTTPHeaderRaw
	BufHTTPHeaderNames
	BufHTTPUserAgent
	BufHTTPCookie
	BufHTTPContentType
	BufHTTPContentLen
	BufHTTPReferer
	BufHTTPAccept
	BufHTTPAcceptEnc
	BufHTTPAcceptLang
	BufHTTPConnection
	BufHTTPLocation
	BufHTTPServer
	BufHTTPProtocol
	BufHTTPRequestLine
	BufHTTPResponseLine
	BufHTTPStart
	BufHTTPRequestBody
	BufHTTPStatCode
	BufHTTPStatMsg
	BufHTTPResponseBody
	BufFileData
	BufDNSQuery
	BufTLSSNI
	BufTLSCertSubject
	BufTLSCertIssuer
	BufTLSCertSerial
	BufTLSCerts
	BufJA3Hash
	BufJA3SHash
	numBuffers
)

// Direction a buffer exists in.
type bufDir uint8

const (
	dirBoth bufDir = iota
	dirToServer
	dirToClient
)

// bufferInfo describes one buffer: its canonical sticky-buffer name, the
// other spellings that select it, the legacy content modifier that moves the
// preceding content into it, the pcre flag letter that selects it, its
// prefilter priority (lower wins, as Suricata's registrations), the app
// protocol it needs and the direction it exists in.
type bufferInfo struct {
	name     string
	aliases  []string
	modifier string
	pcreFlag byte
	priority int
	app      AppProto
	dir      bufDir
	// transform: the buffer accepts transforms (every sticky buffer does).
}

var bufferTable = [numBuffers]bufferInfo{
	BufPayload:          {name: "payload", priority: 3},
	BufHTTPURI:          {name: "http.uri", aliases: []string{"http.uri.normalized"}, modifier: "http_uri", pcreFlag: 'U', priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPURIRaw:       {name: "http.uri.raw", modifier: "http_raw_uri", pcreFlag: 'I', priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPMethod:       {name: "http.method", modifier: "http_method", pcreFlag: 'M', priority: 4, app: AppHTTP, dir: dirToServer},
	BufHTTPHost:         {name: "http.host", modifier: "http_host", pcreFlag: 'W', priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPHostRaw:      {name: "http.host.raw", modifier: "http_raw_host", pcreFlag: 'Z', priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPHeader:       {name: "http.header", modifier: "http_header", pcreFlag: 'H', priority: 2, app: AppHTTP},
	BufHTTPHeaderRaw:    {name: "http.header.raw", modifier: "http_raw_header", pcreFlag: 'D', priority: 2, app: AppHTTP},
	BufHTTPHeaderNames:  {name: "http.header_names", aliases: []string{"http_header_names"}, priority: 2, app: AppHTTP},
	BufHTTPUserAgent:    {name: "http.user_agent", modifier: "http_user_agent", pcreFlag: 'V', priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPCookie:       {name: "http.cookie", modifier: "http_cookie", pcreFlag: 'C', priority: 2, app: AppHTTP},
	BufHTTPContentType:  {name: "http.content_type", aliases: []string{"http_content_type"}, priority: 2, app: AppHTTP},
	BufHTTPContentLen:   {name: "http.content_len", aliases: []string{"http_content_len"}, priority: 2, app: AppHTTP},
	BufHTTPReferer:      {name: "http.referer", aliases: []string{"http_referer"}, priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPAccept:       {name: "http.accept", aliases: []string{"http_accept"}, priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPAcceptEnc:    {name: "http.accept_enc", aliases: []string{"http_accept_enc"}, priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPAcceptLang:   {name: "http.accept_lang", aliases: []string{"http_accept_lang"}, priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPConnection:   {name: "http.connection", aliases: []string{"http_connection"}, priority: 2, app: AppHTTP},
	BufHTTPLocation:     {name: "http.location", priority: 2, app: AppHTTP, dir: dirToClient},
	BufHTTPServer:       {name: "http.server", priority: 2, app: AppHTTP, dir: dirToClient},
	BufHTTPProtocol:     {name: "http.protocol", aliases: []string{"http_protocol"}, priority: 2, app: AppHTTP},
	BufHTTPRequestLine:  {name: "http.request_line", aliases: []string{"http_request_line"}, priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPResponseLine: {name: "http.response_line", aliases: []string{"http_response_line"}, priority: 2, app: AppHTTP, dir: dirToClient},
	BufHTTPStart:        {name: "http.start", aliases: []string{"http_start"}, priority: 2, app: AppHTTP},
	BufHTTPRequestBody:  {name: "http.request_body", modifier: "http_client_body", pcreFlag: 'P', priority: 2, app: AppHTTP, dir: dirToServer},
	BufHTTPStatCode:     {name: "http.stat_code", modifier: "http_stat_code", pcreFlag: 'S', priority: 4, app: AppHTTP, dir: dirToClient},
	BufHTTPStatMsg:      {name: "http.stat_msg", modifier: "http_stat_msg", pcreFlag: 'Y', priority: 3, app: AppHTTP, dir: dirToClient},
	BufHTTPResponseBody: {name: "http.response_body", modifier: "http_server_body", priority: 2, app: AppHTTP, dir: dirToClient},
	BufFileData:         {name: "file.data", aliases: []string{"file_data"}, pcreFlag: 'Q', priority: 2},
	BufDNSQuery:         {name: "dns.query", aliases: []string{"dns_query"}, priority: 2, app: AppDNS, dir: dirToServer},
	BufTLSSNI:           {name: "tls.sni", aliases: []string{"tls_sni"}, priority: 2, app: AppTLS, dir: dirToServer},
	BufTLSCertSubject:   {name: "tls.cert_subject", aliases: []string{"tls_cert_subject"}, priority: 2, app: AppTLS, dir: dirToClient},
	BufTLSCertIssuer:    {name: "tls.cert_issuer", aliases: []string{"tls_cert_issuer"}, priority: 2, app: AppTLS, dir: dirToClient},
	BufTLSCertSerial:    {name: "tls.cert_serial", aliases: []string{"tls_cert_serial"}, priority: 2, app: AppTLS, dir: dirToClient},
	BufTLSCerts:         {name: "tls.certs", priority: 2, app: AppTLS, dir: dirToClient},
	BufJA3Hash:          {name: "ja3.hash", aliases: []string{"ja3_hash"}, priority: 2, app: AppTLS, dir: dirToServer},
	BufJA3SHash:         {name: "ja3s.hash", priority: 2, app: AppTLS, dir: dirToClient},
}

// String returns the buffer's canonical (sticky-buffer) name.
func (b Buffer) String() string {
	if b < numBuffers {
		return bufferTable[b].name
	}
	return "unknown"
}

// Priority is the buffer's prefilter priority; lower is preferred.
func (b Buffer) Priority() int { return bufferTable[b].priority }

// AppProto is the application protocol the buffer comes from (AppNone for
// the payload and file.data, which HTTP and other protocols share).
func (b Buffer) AppProto() AppProto { return bufferTable[b].app }

var (
	stickyNames     = map[string]Buffer{}
	modifierNames   = map[string]Buffer{}
	pcreBufferFlags = map[byte]Buffer{}
)

func init() {
	for i := Buffer(1); i < numBuffers; i++ {
		bi := bufferTable[i]
		stickyNames[bi.name] = i
		for _, a := range bi.aliases {
			stickyNames[a] = i
		}
		if bi.modifier != "" {
			modifierNames[bi.modifier] = i
		}
		if bi.pcreFlag != 0 {
			pcreBufferFlags[bi.pcreFlag] = i
		}
	}
	// http_server_body is also Suricata's legacy spelling for the response
	// body; file_data/file.data is the sticky buffer for it in HTTP.
}

var transformNames = map[string]Transform{
	"dotprefix":           TransformDotPrefix,
	"strip_whitespace":    TransformStripWhitespace,
	"compress_whitespace": TransformCompressWhitespace,
	"to_lowercase":        TransformToLower,
	"to_uppercase":        TransformToUpper,
}
