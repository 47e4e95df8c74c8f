package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/keys"
	"switchyard/routing"
)

// DefaultRedisPasswordEnv holds the password of the key store's Redis, if
// it has one.
const DefaultRedisPasswordEnv = "SWITCHYARD_KEYS_REDIS_PASSWORD"

// DefaultAdminKeyEnv holds the admin API's credential unless
// -admin-key-file names a file.
const DefaultAdminKeyEnv = "SWITCHYARD_ADMIN_KEY"

// keyStoreFlags choose the key store and the admin API's credential.
type keyStoreFlags struct {
	file         string
	redis        string
	redisPwEnv   string
	redisCAFile  string
	adminKeyEnv  string
	adminKeyFile string
}

func (k *keyStoreFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.file, "keys-file", "", "key store in this JSON file (one replica; created on the first change): client keys and teams managed with the admin API")
	fs.StringVar(&k.redis, "keys-redis", "", "key store in this Redis, shared by every replica: host:port, unix:/path, or a redis://, rediss:// (TLS) or unix:// URL")
	fs.StringVar(&k.redisPwEnv, "keys-redis-password-env", DefaultRedisPasswordEnv, "environment variable holding the password of the -keys-redis Redis (unset or empty: the URL's, if any, else none)")
	fs.StringVar(&k.redisCAFile, "keys-redis-ca-file", "", "PEM file of the CAs that sign the -keys-redis server's certificate (rediss:// only; default: the system's)")
	fs.StringVar(&k.adminKeyEnv, "admin-key-env", DefaultAdminKeyEnv, "environment variable holding the admin API's credential")
	fs.StringVar(&k.adminKeyFile, "admin-key-file", "", "file holding the admin API's credential (instead of -admin-key-env)")
}

func (k *keyStoreFlags) validate() error {
	if k.file != "" && k.redis != "" {
		return errors.New("-keys-file and -keys-redis are exclusive: pick one key store")
	}
	if k.redisCAFile != "" && k.redis == "" {
		return errors.New("-keys-redis-ca-file needs -keys-redis")
	}
	return nil
}

// adminCredential reads the admin API's credential; "" when none is set.
func (k *keyStoreFlags) adminCredential() (string, error) {
	if k.adminKeyFile != "" {
		b, err := os.ReadFile(k.adminKeyFile)
		if err != nil {
			return "", fmt.Errorf("reading -admin-key-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv(k.adminKeyEnv)), nil
}

// keyStore is the running key store and its admin API; nil without one.
type keyStore struct {
	store *keys.Store
	admin http.Handler // nil: no admin credential
}

// openKeyStore opens the key store the flags name. A Redis that cannot be
// reached yet is not fatal (the store reports it and serves no key until
// it can); an unreadable file is.
func openKeyStore(ctx context.Context, k keyStoreFlags, cfg func() *routing.Router, reg prometheus.Registerer, log *slog.Logger) (*keyStore, error) {
	var b keys.Backend
	switch {
	case k.file != "":
		b = keys.NewFile(k.file)
	case k.redis != "":
		r, err := keys.NewRedis(k.redis, keys.RedisOptions{Timeout: time.Second, Password: os.Getenv(k.redisPwEnv), CAFile: k.redisCAFile})
		if err != nil {
			return nil, fmt.Errorf("-keys-redis: %w", err)
		}
		keys.SetRedisLogger(log)
		b = r
	default:
		return nil, nil
	}
	s, err := keys.Open(ctx, b, keys.Options{Logger: log, Registerer: reg, StartDown: k.redis != "",
		OnChange: memoryLimitForKeys(os.Getenv)})
	if err != nil {
		return nil, fmt.Errorf("opening the key store: %w", err)
	}
	go s.Run(ctx)
	ks := &keyStore{store: s}
	cred, err := k.adminCredential()
	if err != nil {
		s.Close()
		return nil, err
	}
	if cred == "" {
		log.Warn("key store open without an admin credential: the admin API is off", "env", k.adminKeyEnv)
		return ks, nil
	}
	ks.admin = s.Handler(keys.AdminOptions{Credential: cred, Logger: log, Reserved: func(name string) bool {
		_, ok := cfg().PrincipalNamed(name)
		return ok
	}})
	log.Info("key store open", "keys", s.Keys().Len(), "admin_api", keys.AdminPrefix)
	return ks, nil
}

// keysFunc is the processor's view of the store: nil without one.
func (ks *keyStore) keysFunc() func() *routing.KeySet {
	if ks == nil {
		return nil
	}
	return ks.store.Keys
}

func (ks *keyStore) adminHandler() http.Handler {
	if ks == nil {
		return nil
	}
	return ks.admin
}

func (ks *keyStore) Close() {
	if ks != nil {
		ks.store.Close()
	}
}
