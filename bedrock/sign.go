package bedrock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"switchyard/config"
)

// Service is the SigV4 service name of Bedrock's runtime.
const Service = "bedrock"

// Endpoint is one Bedrock provider: where it is and how it signs.
type Endpoint struct {
	Region string
	// Host is the Host header Envoy sends upstream, which the signature
	// covers (NewEndpoint).
	Host  string
	Creds *Credentials
}

// NewEndpoint is the endpoint of a provider at host:port over https
// (tls) or http. Its Host is what Envoy sends (config.HostHeader): the
// gateway's routes rewrite the Host header to the endpoint's name.
func NewEndpoint(region, host string, port int, tls bool, creds *Credentials) *Endpoint {
	return &Endpoint{Region: region, Host: config.HostHeader(host, port, tls), Creds: creds}
}

var signer = v4.NewSigner()

// Header is one header a signed request carries.
type Header struct{ Name, Value string }

// Sign returns the headers that sign a POST of body to path (escaped, as
// sent) at the endpoint's host now: x-amz-date, x-amz-security-token with
// session credentials, and authorization. The signed headers are host and
// those, so nothing Envoy adds later can break the signature.
func (e *Endpoint) Sign(path string, body []byte, now time.Time) ([]Header, error) {
	creds, err := e.Creds.Get()
	if err != nil {
		return nil, err
	}
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	req := &http.Request{Method: http.MethodPost, Host: e.Host, Header: make(http.Header, 3),
		URL: &url.URL{Scheme: "https", Host: e.Host, Path: unescaped, RawPath: path}}
	if err := signer.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), Service, e.Region, now); err != nil {
		return nil, err
	}
	out := make([]Header, 0, 3)
	for _, name := range []string{"X-Amz-Date", "X-Amz-Security-Token", "Authorization"} {
		if v := req.Header.Get(name); v != "" {
			out = append(out, Header{Name: strings.ToLower(name), Value: v})
		}
	}
	return out, nil
}

// InvokePath is the path of InvokeModel (stream false) or
// InvokeModelWithResponseStream for model, escaped as AWS's SDKs do.
func InvokePath(model string, stream bool) string {
	p := "/model/" + escape(model) + "/invoke"
	if stream {
		p += "-with-response-stream"
	}
	return p
}

// escape percent-encodes every byte but the unreserved ones.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}
