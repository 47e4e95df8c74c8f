package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"switchyard/config"
	"switchyard/routing"
)

// AdminPrefix is where the admin API is served on extproc's admin address.
const AdminPrefix = "/admin/v1/"

// ActorHeader names who makes a change, for the audit log (the CLI sends
// the user's login); "admin" when absent.
const ActorHeader = "x-switchyard-actor"

// maxAdminBody bounds an admin request body.
const maxAdminBody = 1 << 20

// maxName bounds key and team names.
const maxName = 128

// SecretPrefix starts every key the store makes, so one is easy to spot
// (and to scan for in leaked text).
const SecretPrefix = "sy-"

// AdminOptions configure the admin API.
type AdminOptions struct {
	// Credential is the admin key; requests must send it as a bearer token.
	Credential string
	// Reserved reports whether a client key in the config file has this
	// name: the store refuses it (the config's key would win anyway).
	Reserved func(name string) bool
	Logger   *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

type admin struct {
	s      *Store
	o      AdminOptions
	digest [sha256.Size]byte
}

// Handler serves the admin API under AdminPrefix.
func (s *Store) Handler(o AdminOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = s.log
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Reserved == nil {
		o.Reserved = func(string) bool { return false }
	}
	a := &admin{s: s, o: o, digest: sha256.Sum256([]byte(o.Credential))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/keys", a.listKeys)
	mux.HandleFunc("POST /admin/v1/keys", a.change("create_key", a.createKey))
	mux.HandleFunc("GET /admin/v1/keys/{name}", a.getKey)
	mux.HandleFunc("PATCH /admin/v1/keys/{name}", a.change("update_key", a.updateKey))
	mux.HandleFunc("DELETE /admin/v1/keys/{name}", a.change("revoke_key", a.revokeKey))
	mux.HandleFunc("POST /admin/v1/keys/{name}/rotate", a.change("rotate_key", a.rotateKey))
	mux.HandleFunc("POST /admin/v1/keys/{name}/disable", a.change("disable_key", a.setDisabled(true)))
	mux.HandleFunc("POST /admin/v1/keys/{name}/enable", a.change("enable_key", a.setDisabled(false)))
	mux.HandleFunc("GET /admin/v1/teams", a.listTeams)
	mux.HandleFunc("POST /admin/v1/teams", a.change("create_team", a.createTeam))
	mux.HandleFunc("PATCH /admin/v1/teams/{name}", a.change("update_team", a.updateTeam))
	mux.HandleFunc("DELETE /admin/v1/teams/{name}", a.change("delete_team", a.deleteTeam))
	mux.HandleFunc("/admin/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, "not_found", "no admin endpoint " + r.Method + " " + r.URL.Path})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			writeError(w, &apiError{http.StatusUnauthorized, "invalid_admin_credential", "send the admin credential as a bearer token"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		mux.ServeHTTP(w, r)
	})
}

func (a *admin) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	d := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(d[:], a.digest[:]) == 1
}

// apiError is an admin API error: {"error":{"message","type","code"}}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"error": map[string]any{"message": e.message, "type": "admin_error", "code": e.code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // answers may hold a new secret
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...)}
}

func notFound(what, name string) *apiError {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no %s is named %q", what, name)}
}

// change wraps a handler that changes the store: it answers, logs the
// change for the audit (who, what, when, never a secret) and counts it.
func (a *admin) change(action string, h func(r *http.Request) (status int, body any, target string, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, target, err := h(r)
		result := "ok"
		if err != nil {
			var e *apiError
			if !errors.As(err, &e) {
				e = &apiError{http.StatusServiceUnavailable, "store_unavailable", "the key store cannot be changed right now; nothing was changed"}
				a.o.Logger.Warn("admin change failed", "action", action, "err", err.Error())
			}
			status, result = e.status, "refused"
			writeError(w, e)
		} else {
			writeJSON(w, status, body)
		}
		a.s.m.changes.WithLabelValues(action, result).Inc()
		a.o.Logger.LogAttrs(r.Context(), slog.LevelInfo, "admin change",
			slog.String("actor", actor(r)), slog.String("remote", r.RemoteAddr), slog.String("action", action),
			slog.String("target", truncate(target, maxName)), slog.String("result", result), slog.Int("status", status),
			slog.Time("at", a.o.Now().UTC()))
	}
}

func actor(r *http.Request) string {
	v := r.Header.Get(ActorHeader)
	if v == "" || !validName(v) {
		return "admin"
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func validName(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func checkName(what, s string) error {
	if !validName(s) {
		return badRequest("%s name must be 1 to %d characters of [A-Za-z0-9_.-], got %d characters", what, maxName, len(s))
	}
	return nil
}

// decode reads one JSON object into v, refusing unknown fields, trailing
// data and bodies over the limit.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is over %d bytes", maxAdminBody)}
		}
		return badRequest("malformed JSON body: %s", err.Error())
	}
	if dec.More() {
		return badRequest("malformed JSON body: more than one JSON value")
	}
	return nil
}

// KeyView is a key as the API shows it: without its digest.
type KeyView struct {
	Name      string     `json:"name"`
	Team      string     `json:"team,omitempty"`
	Models    []string   `json:"models,omitempty"`
	MCPTools  []string   `json:"mcp_tools,omitempty"`
	Limits    Limits     `json:"limits,omitzero"`
	LoopGuard *LoopGuard `json:"loop_guard,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func view(k Key) KeyView {
	return KeyView{Name: k.Name, Team: k.Team, Models: k.Models, MCPTools: k.MCPTools, Limits: k.Limits, LoopGuard: k.LoopGuard,
		ExpiresAt: k.ExpiresAt, Disabled: k.Disabled, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
}

// Created is the answer to create and rotate: the only time the secret is
// shown.
type Created struct {
	Key    KeyView `json:"key"`
	Secret string  `json:"secret"`
}

// keyFields are what create and update may set; nil leaves a field as is.
type keyFields struct {
	Team      *string    `json:"team"`
	Models    *[]string  `json:"models"`
	MCPTools  *[]string  `json:"mcp_tools"`
	Limits    *Limits    `json:"limits"`
	LoopGuard *LoopGuard `json:"loop_guard"`
	ExpiresAt *time.Time `json:"expires_at"`
	Disabled  *bool      `json:"disabled"`
}

func (f *keyFields) validate() error {
	if f.Team != nil && *f.Team != "" {
		if err := checkName("team", *f.Team); err != nil {
			return err
		}
	}
	if f.Models != nil {
		if len(*f.Models) > 1000 {
			return badRequest("at most 1000 models")
		}
		for _, m := range *f.Models {
			if m == "" || len(m) > 256 {
				return badRequest("each model must be 1 to 256 characters")
			}
		}
	}
	if f.MCPTools != nil {
		if len(*f.MCPTools) > 1000 {
			return badRequest("at most 1000 mcp_tools")
		}
		for _, t := range *f.MCPTools {
			if len(t) > 256 {
				return badRequest("each mcp_tools entry must be at most 256 characters")
			}
			if err := config.CheckMCPTool(t); err != nil {
				return badRequest("mcp_tools: %s", err.Error())
			}
		}
	}
	if f.Limits != nil {
		if err := f.Limits.validate(); err != nil {
			return badRequest("%s", err.Error())
		}
	}
	if _, err := f.LoopGuard.compile(); err != nil {
		return badRequest("%s", err.Error())
	}
	return nil
}

func (f *keyFields) apply(st *State, k *Key) error {
	if f.Team != nil {
		if *f.Team != "" {
			if _, ok := st.Teams[*f.Team]; !ok {
				return notFound("team", *f.Team)
			}
		}
		k.Team = *f.Team
	}
	if f.Models != nil {
		k.Models = slices.Clone(*f.Models)
	}
	if f.MCPTools != nil {
		k.MCPTools = slices.Clone(*f.MCPTools)
	}
	if f.Limits != nil {
		k.Limits = *f.Limits
	}
	if f.LoopGuard != nil {
		lg := *f.LoopGuard
		k.LoopGuard = &lg
	}
	if f.ExpiresAt != nil {
		t := f.ExpiresAt.UTC()
		k.ExpiresAt = &t
	}
	if f.Disabled != nil {
		k.Disabled = *f.Disabled
	}
	return nil
}

func newSecret() (secret, digest string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	d := routing.DigestOf(secret)
	return secret, hex.EncodeToString(d[:])
}

func (a *admin) createKey(r *http.Request) (int, any, string, error) {
	var in struct {
		Name string `json:"name"`
		keyFields
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, "", err
	}
	if err := checkName("key", in.Name); err != nil {
		return 0, nil, "", err
	}
	if err := in.validate(); err != nil {
		return 0, nil, in.Name, err
	}
	if a.o.Reserved(in.Name) {
		return 0, nil, in.Name, &apiError{http.StatusConflict, "duplicate_name", fmt.Sprintf("a client key in the config file is named %q", in.Name)}
	}
	secret, digest := newSecret()
	now := a.o.Now().UTC()
	var out Key
	_, err := a.s.Update(r.Context(), func(st *State) error {
		if _, dup := st.Keys[in.Name]; dup {
			return &apiError{http.StatusConflict, "duplicate_name", fmt.Sprintf("a key named %q already exists", in.Name)}
		}
		k := Key{Name: in.Name, Digest: digest, CreatedAt: now, UpdatedAt: now}
		if err := in.apply(st, &k); err != nil {
			return err
		}
		st.Keys[k.Name] = k
		out = k
		return nil
	})
	if err != nil {
		return 0, nil, in.Name, err
	}
	return http.StatusCreated, Created{Key: view(out), Secret: secret}, in.Name, nil
}

// updateOne changes the key named in the path with fn.
func (a *admin) updateOne(ctx context.Context, name string, fn func(st *State, k *Key) error) (Key, error) {
	if err := checkName("key", name); err != nil {
		return Key{}, err
	}
	var out Key
	_, err := a.s.Update(ctx, func(st *State) error {
		k, ok := st.Keys[name]
		if !ok {
			return notFound("key", name)
		}
		if err := fn(st, &k); err != nil {
			return err
		}
		k.UpdatedAt = a.o.Now().UTC()
		st.Keys[name] = k
		out = k
		return nil
	})
	return out, err
}

func (a *admin) updateKey(r *http.Request) (int, any, string, error) {
	name := r.PathValue("name")
	var in keyFields
	if err := decode(r, &in); err != nil {
		return 0, nil, name, err
	}
	if err := in.validate(); err != nil {
		return 0, nil, name, err
	}
	k, err := a.updateOne(r.Context(), name, func(st *State, k *Key) error { return in.apply(st, k) })
	if err != nil {
		return 0, nil, name, err
	}
	return http.StatusOK, map[string]any{"key": view(k)}, name, nil
}

func (a *admin) rotateKey(r *http.Request) (int, any, string, error) {
	name := r.PathValue("name")
	secret, digest := newSecret()
	k, err := a.updateOne(r.Context(), name, func(_ *State, k *Key) error { k.Digest = digest; return nil })
	if err != nil {
		return 0, nil, name, err
	}
	return http.StatusOK, Created{Key: view(k), Secret: secret}, name, nil
}

func (a *admin) setDisabled(disabled bool) func(r *http.Request) (int, any, string, error) {
	return func(r *http.Request) (int, any, string, error) {
		name := r.PathValue("name")
		k, err := a.updateOne(r.Context(), name, func(_ *State, k *Key) error { k.Disabled = disabled; return nil })
		if err != nil {
			return 0, nil, name, err
		}
		return http.StatusOK, map[string]any{"key": view(k)}, name, nil
	}
}

func (a *admin) revokeKey(r *http.Request) (int, any, string, error) {
	name := r.PathValue("name")
	if err := checkName("key", name); err != nil {
		return 0, nil, name, err
	}
	_, err := a.s.Update(r.Context(), func(st *State) error {
		if _, ok := st.Keys[name]; !ok {
			return notFound("key", name)
		}
		delete(st.Keys, name)
		return nil
	})
	if err != nil {
		return 0, nil, name, err
	}
	return http.StatusOK, map[string]any{"revoked": name}, name, nil
}

// state reads the store for a list; an error has been answered.
func (a *admin) state(w http.ResponseWriter, r *http.Request) (State, bool) {
	st, err := a.s.State(r.Context())
	if err != nil {
		a.o.Logger.Warn("admin read failed", "err", err.Error())
		writeError(w, &apiError{http.StatusServiceUnavailable, "store_unavailable", "the key store cannot be read right now"})
		return State{}, false
	}
	return st, true
}

func (a *admin) listKeys(w http.ResponseWriter, r *http.Request) {
	st, ok := a.state(w, r)
	if !ok {
		return
	}
	out := make([]KeyView, 0, len(st.Keys))
	for _, k := range st.Keys {
		out = append(out, view(k))
	}
	slices.SortFunc(out, func(x, y KeyView) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (a *admin) getKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, ok := a.state(w, r)
	if !ok {
		return
	}
	k, ok := st.Keys[name]
	if !ok {
		writeError(w, notFound("key", truncate(name, maxName)))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": view(k)})
}

// TeamView is a team with its member keys.
type TeamView struct {
	Team
	Members []string `json:"members"`
}

func (a *admin) listTeams(w http.ResponseWriter, r *http.Request) {
	st, ok := a.state(w, r)
	if !ok {
		return
	}
	out := make([]TeamView, 0, len(st.Teams))
	for _, t := range st.Teams {
		out = append(out, teamView(st, t))
	}
	slices.SortFunc(out, func(x, y TeamView) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"teams": out})
}

func teamView(st State, t Team) TeamView {
	v := TeamView{Team: t, Members: []string{}}
	for _, k := range st.Keys {
		if k.Team == t.Name {
			v.Members = append(v.Members, k.Name)
		}
	}
	slices.Sort(v.Members)
	return v
}

func (a *admin) createTeam(r *http.Request) (int, any, string, error) {
	var in struct {
		Name   string `json:"name"`
		Limits Limits `json:"limits"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, "", err
	}
	if err := checkName("team", in.Name); err != nil {
		return 0, nil, "", err
	}
	if err := in.Limits.validate(); err != nil {
		return 0, nil, in.Name, badRequest("%s", err.Error())
	}
	now := a.o.Now().UTC()
	t := Team{Name: in.Name, Limits: in.Limits, CreatedAt: now, UpdatedAt: now}
	_, err := a.s.Update(r.Context(), func(st *State) error {
		if _, dup := st.Teams[in.Name]; dup {
			return &apiError{http.StatusConflict, "duplicate_name", fmt.Sprintf("a team named %q already exists", in.Name)}
		}
		st.Teams[t.Name] = t
		return nil
	})
	if err != nil {
		return 0, nil, in.Name, err
	}
	return http.StatusCreated, map[string]any{"team": TeamView{Team: t, Members: []string{}}}, in.Name, nil
}

func (a *admin) updateTeam(r *http.Request) (int, any, string, error) {
	name := r.PathValue("name")
	if err := checkName("team", name); err != nil {
		return 0, nil, name, err
	}
	var in struct {
		Limits *Limits `json:"limits"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, name, err
	}
	if in.Limits != nil {
		if err := in.Limits.validate(); err != nil {
			return 0, nil, name, badRequest("%s", err.Error())
		}
	}
	var out TeamView
	_, err := a.s.Update(r.Context(), func(st *State) error {
		t, ok := st.Teams[name]
		if !ok {
			return notFound("team", name)
		}
		if in.Limits != nil {
			t.Limits = *in.Limits
		}
		t.UpdatedAt = a.o.Now().UTC()
		st.Teams[name] = t
		out = teamView(*st, t)
		return nil
	})
	if err != nil {
		return 0, nil, name, err
	}
	return http.StatusOK, map[string]any{"team": out}, name, nil
}

func (a *admin) deleteTeam(r *http.Request) (int, any, string, error) {
	name := r.PathValue("name")
	if err := checkName("team", name); err != nil {
		return 0, nil, name, err
	}
	_, err := a.s.Update(r.Context(), func(st *State) error {
		t, ok := st.Teams[name]
		if !ok {
			return notFound("team", name)
		}
		if m := teamView(*st, t).Members; len(m) > 0 {
			return &apiError{http.StatusConflict, "team_has_members", fmt.Sprintf("team %q still has %d keys; move or revoke them first", name, len(m))}
		}
		delete(st.Teams, name)
		return nil
	})
	if err != nil {
		return 0, nil, name, err
	}
	return http.StatusOK, map[string]any{"deleted": name}, name, nil
}
