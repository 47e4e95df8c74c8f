package config

import (
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

// Key returns the key named by the environment variable envName or, when
// that is empty, by the file, trimmed; or a description of why there is none.
// The description never contains the key.
func (e Env) Key(envName, file string) (key, problem string) {
	if envName != "" {
		val, ok := e.getenv(envName)
		if !ok {
			return "", fmt.Sprintf("environment variable %s is not set", envName)
		}
		key = strings.TrimSpace(val)
		if key == "" {
			return "", fmt.Sprintf("environment variable %s is empty", envName)
		}
		if hasControl(key) {
			return "", fmt.Sprintf("environment variable %s holds control characters", envName)
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
