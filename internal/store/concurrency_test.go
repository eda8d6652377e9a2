package store

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Writers and readers of every table run at once, with the sweeper; run with
// -race. Every revocation written must be visible to readers once its Put
// returned.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	const writers, readers, perWriter = 4, 4, 40
	exp := t0.Add(time.Hour)

	var wg sync.WaitGroup
	written := make(chan TokenRef, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				sub := fmt.Sprintf("user-%d-%d", w, i)
				if _, err := s.PutRevocation(ctx, Revocation{Kind: KindSubject, Issuer: iss, Value: sub, ExpiresAt: exp}); err != nil {
					t.Error(err)
					return
				}
				written <- TokenRef{Issuer: iss, Subject: sub, IssuedAt: t0.Add(-time.Second)}
				hash := fmt.Sprintf("tok-%d", i%5)
				if err := s.RecordFingerprint(ctx, hash, Sighting{IP: netip.AddrFrom4([4]byte{10, 0, byte(w), byte(i)}), ExpiresAt: exp}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.SpendDPoPJTI(ctx, fmt.Sprintf("proof-%d-%d", w, i), exp); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case ref := <-written:
					if _, ok, err := s.CheckRevocation(ctx, ref); err != nil || !ok {
						t.Errorf("CheckRevocation(%s) = %v, %v; want revoked", ref.Subject, ok, err)
					}
				default:
					if _, _, err := s.CheckRevocation(ctx, TokenRef{Issuer: iss, Subject: "nobody", JTI: "j", IssuedAt: t0}); err != nil {
						t.Error(err)
					}
					if _, _, err := s.LastSeen(ctx, "tok-1"); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	rg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := s.Sweep(ctx, c.Now()); err != nil {
					t.Error(err)
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	wg.Wait()
	close(stop)
	rg.Wait()

	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revocations[KindSubject] != writers*perWriter || st.DPoPJTIs != writers*perWriter || st.Fingerprints != 5 {
		t.Errorf("stats = %+v", st)
	}
	var total uint64
	for i := range 5 {
		fp, ok, err := s.LastSeen(ctx, fmt.Sprintf("tok-%d", i))
		if err != nil || !ok {
			t.Fatalf("LastSeen: %v %v", ok, err)
		}
		total += fp.Count
	}
	if total != writers*perWriter {
		t.Errorf("fingerprint counts sum to %d, want %d: a coalesced write was lost or doubled", total, writers*perWriter)
	}
}
