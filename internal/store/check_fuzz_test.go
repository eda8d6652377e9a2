package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FuzzCheckFile: the check never panics, and a file it passes can be opened
// for writing and walked by bbolt without a crash (bbolt's walk at open runs
// in a goroutine of its own, where a panic would end the process).
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	s, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 300 {
		_, _ = s.PutRevocation(context.Background(), Revocation{Kind: KindJTI, Issuer: iss, Value: string(rune('a'+i%26)) + string(rune(i)), ExpiresAt: time.Now().Add(time.Hour)})
	}
	_ = s.Close()
	sound, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sound)
	f.Add(sound[:len(sound)/2])
	f.Add(sound[:100])
	zeroed := bytes.Clone(sound)
	clear(zeroed[2*4096 : 3*4096])
	f.Add(zeroed)
	flipped := bytes.Clone(sound)
	for i := 2*4096 + 16; i < 2*4096+64; i++ {
		flipped[i] ^= 0xA5
	}
	f.Add(flipped)
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		if err := checkReader(context.Background(), bytes.NewReader(data), int64(len(data))); err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := boltCheck(context.Background(), path); err != nil {
			return
		}
		db, err := openDB(path, time.Second)
		if err != nil {
			return
		}
		defer db.Close()
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return nil })
		})
	})
}
