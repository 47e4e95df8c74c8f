package gcpauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"switchyard/internal/testkit"
)

// fakeFinder hands out tokens "t1", "t2", ... living life each, after
// release lets a fetch through; fail makes fetches fail.
type fakeFinder struct {
	n       atomic.Int64
	life    time.Duration
	fail    atomic.Bool
	release chan struct{}
}

func (f *fakeFinder) find(ctx context.Context) (oauth2.TokenSource, error) {
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail.Load() {
		return nil, errors.New("google said no")
	}
	n := f.n.Add(1)
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t" + strconv.FormatInt(n, 10), Expiry: time.Now().Add(f.life)}), nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func waitBearer(t *testing.T, s *Source, want string) {
	t.Helper()
	testkit.WaitBearer(t, s.Bearer, want)
}

// TestSourceNeverWaits: while the first fetch hangs, Bearer answers at once
// with ErrNoToken; once it lands, the token.
func TestSourceNeverWaits(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeFinder{life: time.Hour, release: make(chan struct{})}
	s := NewSource(ctx, f.find, quiet)
	start := time.Now()
	if _, err := s.Bearer(); !errors.Is(err, ErrNoToken) {
		t.Fatalf("Bearer before the first token: %v, want ErrNoToken", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Bearer waited %v for a fetch", d)
	}
	close(f.release)
	waitBearer(t, s, "Bearer t1")
}

// TestSourceFetchFails: a failed fetch is logged and retried; Bearer says
// it failed without Google's words, and a later fetch recovers.
func TestSourceFetchFails(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	f := &fakeFinder{life: time.Hour}
	f.fail.Store(true)
	s := NewSource(ctx, f.find, slog.New(slog.NewTextHandler(&logs, nil)))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "google said no") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed fetch logged: %q", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err := s.Bearer()
	if !errors.Is(err, ErrNoToken) || strings.Contains(err.Error(), "google said no") || !strings.Contains(err.Error(), "log says why") {
		t.Errorf("Bearer after a failed fetch: %v", err)
	}
	f.fail.Store(false)
	waitBearer(t, s, "Bearer t1")
}

// TestServiceAccountFile: a key file's tokens come from its token_uri with
// a JWT assertion signed by its key (checked here with its public key);
// each fetch is a new token; a missing or malformed file is refused at
// once, without the key in the error.
func TestServiceAccountFile(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var minted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, 400)
			return
		}
		if err := verifyJWT(r.Form.Get("assertion"), &key.PublicKey); err != nil {
			http.Error(w, `{"error":"invalid_grant","error_description":"`+err.Error()+`"}`, 400)
			return
		}
		n := minted.Add(1)
		w.Header().Set("content-type", "application/json")
		w.Write([]byte(`{"access_token":"ya29.tok` + strconv.FormatInt(n, 10) + `","token_type":"Bearer","expires_in":3600}`))
	}))
	defer srv.Close()
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key": string(pemKey), "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": srv.URL + "/token"})
	dir := t.TempDir()
	file := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(file, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	find, err := NewFinder(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ya29.tok1", "ya29.tok2"} {
		ts, err := find(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ts.Token()
		if err != nil || tok.AccessToken != want || time.Until(tok.Expiry) < 50*time.Minute {
			t.Fatalf("Token = %+v, %v; want %s for an hour", tok, err, want)
		}
	}
	if _, err := NewFinder(ctx, filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
	user := filepath.Join(dir, "user.json")
	os.WriteFile(user, bytes.Replace(sa, []byte(`"service_account"`), []byte(`"authorized_user"`), 1), 0o600)
	if _, err := NewFinder(ctx, user); err == nil || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("a file of another type: %v", err)
	}
}

// verifyJWT checks an RS256 JWT's signature.
func verifyJWT(jwt string, pub *rsa.PublicKey) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
