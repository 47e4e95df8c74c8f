package bench

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"switchyard/keys"
	"switchyard/routing"
)

// writeKeyStore writes a key store file of n keys: benchKey and n-1 others.
func writeKeyStore(path string, n int) error {
	st := keys.State{Keys: make(map[string]keys.Key, n), Teams: map[string]keys.Team{}}
	now := time.Now().UTC()
	for i := range n {
		secret := benchKey
		if i > 0 {
			secret = benchKey + "-" + strconv.Itoa(i)
		}
		d := routing.DigestOf(secret)
		name := "bench-" + strconv.Itoa(i)
		st.Keys[name] = keys.Key{Name: name, Digest: hex.EncodeToString(d[:]), CreatedAt: now, UpdatedAt: now}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding the key store: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("writing the key store: %w", err)
	}
	return nil
}
