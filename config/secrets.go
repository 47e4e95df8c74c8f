package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Env is where secrets come from. The zero value reads the process
// environment and the file system.
type Env struct {
	Getenv   func(string) (string, bool)
	ReadFile func(string) ([]byte, error)
	// EntraTokens gives an "entra" provider its token source; nil: such
	// providers are unavailable (commands that send no requests).
	EntraTokens func(e *EntraConfig, secret string) (TokenSource, error)
	// GCPTokens gives a "gcp_oauth" provider its token source from a
	// service account key file, or Application Default Credentials when
	// empty; nil: such providers are unavailable.
	GCPTokens func(credentialsFile string) (TokenSource, error)
}

func (e Env) getenv(name string) (string, bool) {
	if e.Getenv == nil {
		return os.LookupEnv(name)
	}
	return e.Getenv(name)
}

func (e Env) readFile(name string) ([]byte, error) {
	if e.ReadFile == nil {
		return os.ReadFile(name)
	}
	return e.ReadFile(name)
}

// envLabel names an environment variable in a message: by its name when
// that is written as such names are (upper case, digits, underscores), else
// not at all, since a key pasted where its variable's name belongs is
// still a valid name ("gsk_...") and would end up in logs and errors.
func envLabel(name string) string {
	if !writtenAsName(name) {
		return "the environment variable named in the config (its name not shown: not upper case, it may be a key)"
	}
	return "environment variable " + name
}

// envSource names a key by its variable where a key must be told from the
// others of its pool (logs, metrics, errors): the name when written as
// variable names are, else a digest of it, for the reason envLabel gives.
func envSource(name string) string {
	if writtenAsName(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "env:" + hex.EncodeToString(sum[:4])
}

// writtenAsName reports whether name is written as environment variable
// names are: upper case, digits, underscores.
func writtenAsName(name string) bool {
	for _, c := range []byte(name) {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Key returns the key named by the environment variable envName or, when
// that is empty, by the file, trimmed; or a description of why there is none.
// The description never contains the key.
func (e Env) Key(envName, file string) (key, problem string) {
	if envName != "" {
		val, ok := e.getenv(envName)
		if !ok {
			return "", envLabel(envName) + " is not set"
		}
		key = strings.TrimSpace(val)
		if key == "" {
			return "", envLabel(envName) + " is empty"
		}
		if hasControl(key) {
			return "", envLabel(envName) + " holds control characters"
		}
		return key, ""
	}
	data, err := e.readFile(file)
	if err != nil {
		return "", fmt.Sprintf("key file %s could not be read", file)
	}
	key = strings.TrimSpace(string(data))
	if key == "" {
		return "", fmt.Sprintf("key file %s is empty", file)
	}
	if hasControl(key) {
		return "", fmt.Sprintf("key file %s holds control characters or more than one line", file)
	}
	return key, ""
}

// errEnvName refuses a variable name without quoting it: what is there
// instead is often the key itself.
const errEnvName = "is not a valid environment variable name (letters, digits and underscores; not shown: it may be a key)"
